"""``jobops``: the command line.

Exit codes: 0 done, 1 the thing checked is not well (timeout, failures), 2 bad usage or
settings.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jobops.core.errors import ConfigurationError, InvalidRequest, JobopsError


def _sandbox(args: argparse.Namespace) -> int:
    from sandbox import SandboxConfig, SandboxServer, SandboxState

    config = SandboxConfig(
        client_id=args.client_id,
        client_secret=args.client_secret,
        in_progress_seconds=args.in_progress_seconds,
        in_progress_jitter_seconds=args.in_progress_jitter_seconds,
        token_lifetime_seconds=args.token_lifetime_seconds,
        migrating_organizations=frozenset(args.migrating),
    )
    server = SandboxServer(SandboxState(config), host=args.host, port=args.port)
    print(f"sandbox listening on {server.url} (client id {config.client_id!r})", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


def _demo(args: argparse.Namespace) -> int:
    from jobops.dev.demo import run_demo

    return run_demo(timeout_seconds=args.timeout_seconds)


def _status(args: argparse.Namespace) -> int:
    from jobops.core.polling import poll
    from workers.runtime import runtime

    fleet = runtime()
    report = poll(fleet.client, list(args.urns), fleet.settings.max_query_bytes, fleet.clock.now())
    rows = [{"task_urn": urn, **entry} for urn, entry in report.decided.items()]
    rows += [{"task_urn": urn, "status": "INVALID", "errorMessage": why}
             for urn, why in report.invalid.items()]
    rows += [{"task_urn": urn, "status": "IN_PROGRESS"} for urn in report.pending]
    if args.json:
        print(json.dumps({"results": rows, "error": str(report.error) if report.error else None}))
    else:
        for row in rows:
            print(f"{row['status']:<12} {row['task_urn']}  {row.get('errorMessage') or ''}")
        if report.error:
            print(f"LinkedIn call failed: {report.error}", file=sys.stderr)
    return 1 if report.error else 0


def _read_answer(path: str) -> object:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise InvalidRequest(f"--answer {path}: {error.strerror}") from None
    try:
        return json.loads(text)
    except ValueError as error:
        raise InvalidRequest(f"--answer {path} is not JSON: {error}") from None


def _urns_of(args: argparse.Namespace) -> list[str]:
    if args.answer:
        from tasks.scheduling import split_post_answer

        return split_post_answer(_read_answer(args.answer))[0]
    return list(args.urns)


def _schedule(args: argparse.Namespace) -> int:
    from tasks.scheduling import schedule_from_answer, verify_urns

    callbacks = {}
    for item in args.callback:
        status, _, task = item.partition("=")
        if not task:
            raise InvalidRequest(f"--callback {item!r}: write STATUS=task.name")
        callbacks[status] = task
    try:
        context = json.loads(args.context)
    except ValueError as error:
        raise InvalidRequest(f"--context is not JSON: {error}") from None
    common = {"operation": args.operation, "callbacks": callbacks, "context": context,
              "requested_at": args.requested_at, "countdown_seconds": args.countdown_seconds}
    if args.answer:
        summary = schedule_from_answer(_read_answer(args.answer), **common)
    elif args.urns:
        summary = verify_urns(list(args.urns), **common)
    else:
        raise InvalidRequest("give task URNs or --answer FILE")
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"scheduled {summary['task_urns']} URNs in "
              f"{len(summary['verification_ids'])} verification(s), "
              f"{summary['refused']} refused at posting time: "
              + " ".join(summary["verification_ids"]))
    return 0


def _tagged_urns(fleet: Any, args: argparse.Namespace) -> list[str]:
    """The URNs of a context tag, now: the set grows as verifications register."""
    key, equals, value = args.context_tag.partition("=")
    if not equals:
        raise InvalidRequest("--context-tag takes KEY=VALUE")
    # Pending first: a verification that ends meanwhile writes its records before it
    # leaves the registry, so each URN is found in one or the other.
    pending = fleet.pending.urns_with_context(key, value)
    known = {o["task_urn"] for o in fleet.records.with_context(key, value)}
    urns = sorted(known | pending)
    if not urns:
        raise InvalidRequest(f"no verification has context {args.context_tag}")
    return urns


def _progress(done: list[dict[str, Any]], total: int) -> str:
    statuses: dict[str, int] = {}
    for o in done:
        statuses[o["status"]] = statuses.get(o["status"], 0) + 1
    width = 30
    filled = width * len(done) // total
    return (f"[{'#' * filled}{'.' * (width - filled)}] {len(done)}/{total} done"
            + "".join(f" · {n} {status}" for status, n in sorted(statuses.items())))


def _watch(args: argparse.Namespace) -> int:
    from jobops.state.keys import outcome_key
    from workers.runtime import runtime

    fleet = runtime()
    fixed = None if args.context_tag else _urns_of(args)
    deadline = time.monotonic() + args.timeout_seconds
    shown = ""
    while True:
        urns = fixed if fixed is not None else _tagged_urns(fleet, args)
        if not urns:
            raise InvalidRequest("nothing to watch: give task URNs, --answer FILE or "
                                 "--context-tag")
        found = fleet.records.outcomes([outcome_key(u) for u in urns])
        done = [o for o in found if o is not None]
        line = _progress(done, len(urns))
        if not args.json and line != shown:
            print(line, end="\r" if sys.stdout.isatty() else "\n", flush=True)
            shown = line
        if len(done) == len(urns) or time.monotonic() > deadline:
            break
        time.sleep(args.interval_seconds)
    pending = [u for u, o in zip(urns, found, strict=True) if o is None]
    if args.json:
        print(json.dumps({"outcomes": done, "pending": pending}))
    else:
        print()
        _print_outcomes(done)
        if pending:
            print(f"{len(pending)} still pending after {args.timeout_seconds:.0f} s",
                  file=sys.stderr)
    return 1 if pending else 0


def _print_outcomes(outcomes: list[dict[str, object]]) -> None:
    for o in outcomes:
        live = {True: "live", False: "not live", None: "-"}[o["job_live"]]  # type: ignore[index]
        errors = o["errors"]
        codes = ",".join(e["code"] for e in errors) or "-"  # type: ignore[attr-defined]
        print(f"{o['status']:<10} {o['operation']:<7} {live:<9} "
              f"{o['external_job_posting_id'] or '-':<20} {o['location'] or '-':<20} "
              f"{codes:<24} {o['task_urn']}")
        for entry in errors:  # type: ignore[attr-defined]
            print(f"{'':<10} {entry['code']}: {entry['resolution']}")


def _outcome(args: argparse.Namespace) -> int:
    from workers.runtime import runtime

    records = runtime().records
    if args.job:
        found = records.for_job(args.job)
        missing = [] if found else [f"--job {args.job}"]
    else:
        answers = [records.outcome(urn) for urn in args.urns]
        found = [o for o in answers if o is not None]
        missing = [urn for urn, o in zip(args.urns, answers, strict=True) if o is None]
    if args.json:
        print(json.dumps({"outcomes": found, "missing": missing}))
    else:
        _print_outcomes(found)
        for what in missing:
            print(f"no outcome recorded for {what}", file=sys.stderr)
    return 1 if missing else 0


def _metrics(args: argparse.Namespace) -> int:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from jobops.state.metrics import gauges, render
    from workers.runtime import runtime

    fleet = runtime()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - stdlib's name
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            body = render(fleet.redis, gauges(fleet.limiter.snapshot(), *fleet.pending.count(),
                                           fleet.stuck.count()))
            payload = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"metrics on http://{args.host}:{args.port}/metrics", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


def _limits(args: argparse.Namespace) -> int:
    from settings.urls import masked
    from workers.runtime import runtime

    fleet = runtime()
    limits = fleet.limiter.snapshot().as_dict()
    token = fleet.tokens.describe()
    redis_shown = masked(fleet.settings.redis_url)
    if args.json:
        print(json.dumps({"redis": redis_shown, "token": token, "limits": limits}))
        return 0
    print(f"redis   {redis_shown}")
    if token["token"] == "cached":
        print(f"token   cached, {token['age_seconds']:.0f} s old, expires in "
              f"{token['expires_in_seconds']:.0f} s "
              f"(renewed in {token['renewed_in_seconds']:.0f} s)")
    else:
        print("token   none cached (the next call fetches one)")
    if token["locked_by"]:
        print(f"        being refreshed by {token['locked_by']}")
    print(f"rate    {limits['permits_this_second']} of {limits['calls_per_second']} permits "
          "used in the last second")
    print(f"quota   {limits['used_today']:,} of {limits['daily_limit']:,} calls used today "
          f"(reserve {limits['reserve']:,}), {limits['left_today']:,} left; "
          f"Redis time {limits['redis_time_utc']}")
    _print_pause(limits)
    return 0


def _print_pause(limits: dict[str, Any]) -> None:
    pause = limits["pause"]
    if pause is None:
        print("pause   none")
        return
    left = limits["paused_for_seconds"]
    state = "one call is checking now" if pause["probing"] else f"{left:.1f} s left"
    print(f"pause   {pause['reason']}, step {pause['step']} since {pause['since_utc']}: "
          f"{state}\n        last error: {pause['last_error']}\n        {pause['hint']}")


def _stuck(args: argparse.Namespace) -> int:
    from workers.runtime import runtime

    listed = runtime().stuck.listed()
    if args.json:
        print(json.dumps({"stuck": listed}))
    elif not listed:
        print("no verification is failing")
    for entry in [] if args.json else listed:
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry["first_failed_at"]))
        print(f"{entry['verification_id']}  {entry['operation']} · {entry['urns']} URNs · "
              f"{entry['failures']} failed runs since {since}\n    {entry['last_error']}")
    return 1 if listed else 0


def _dead_letters(args: argparse.Namespace) -> int:
    import redis

    from jobops.state.dead_letters import DeadLetters, body
    from settings import get_settings
    from settings.urls import masked

    url = get_settings().effective_broker_url
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigurationError(f"the broker at {masked(url)} is not Redis: dead letters "
                                 "are kept only by jobops' Redis transport")
    letters = DeadLetters(redis.Redis.from_url(url))
    listed = letters.take() if args.clear else letters.listed(args.limit)
    if args.json:
        print(json.dumps({"broker": masked(url), "dead_letters": listed}))
    elif not listed:
        print(f"no dead letters in {masked(url)}")
    for entry in [] if args.json else listed:
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry["at"]))
        cut = f", first {len(body(entry))} shown" if entry["truncated"] else ""
        print(f"{at}  queue {entry['queue']}  {entry['size']} bytes{cut}  {entry['reason']}\n"
              f"    {body(entry)!r}")
    if args.clear and listed:
        print(f"removed {len(listed)} dead letters", file=sys.stderr)
    return 1 if listed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jobops", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the whole flow locally against the sandbox")
    demo.add_argument("--timeout-seconds", type=float, default=120.0)
    demo.set_defaults(run=_demo)

    sandbox = commands.add_parser("sandbox", help="serve the LinkedIn-compatible emulator")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8099)
    sandbox.add_argument("--client-id", default="sandbox-client")
    sandbox.add_argument("--client-secret", default="sandbox-secret")
    sandbox.add_argument("--in-progress-seconds", type=float, default=60.0)
    sandbox.add_argument("--in-progress-jitter-seconds", type=float, default=0.0)
    sandbox.add_argument("--token-lifetime-seconds", type=float, default=1800.0)
    sandbox.add_argument("--migrating", action="append", default=[], metavar="ORG_URN",
                         help="integrationContext of a partner whose jobs end PROCESSED")
    sandbox.set_defaults(run=_sandbox)

    status = commands.add_parser("status", help="ask LinkedIn now for the status of task URNs")
    status.add_argument("urns", nargs="+", metavar="URN")
    status.add_argument("--json", action="store_true", help="print JSON for scripts")
    status.set_defaults(run=_status)

    outcome = commands.add_parser("outcome", help="read recorded outcomes (no LinkedIn call)")
    target = outcome.add_mutually_exclusive_group(required=True)
    target.add_argument("urns", nargs="*", default=[], metavar="URN")
    target.add_argument("--job", metavar="EXTERNAL_JOB_POSTING_ID",
                        help="every recorded outcome of this job")
    outcome.add_argument("--json", action="store_true", help="print JSON for scripts")
    outcome.set_defaults(run=_outcome)

    schedule = commands.add_parser("schedule", help="verify task URNs or a saved POST answer")
    schedule.add_argument("urns", nargs="*", metavar="URN")
    schedule.add_argument("--answer", metavar="FILE",
                          help="the JSON answer of POST /v2/simpleJobPostings ('-': stdin)")
    schedule.add_argument("--operation", required=True,
                          choices=["CREATE", "UPDATE", "RENEW", "CLOSE"])
    schedule.add_argument("--callback", action="append", default=[], metavar="STATUS=TASK",
                          help="a callback task for an outcome status (or DEFAULT)")
    schedule.add_argument("--context", default="{}", help="a JSON object handed back")
    schedule.add_argument("--requested-at", help="when LinkedIn was called (ISO 8601)")
    schedule.add_argument("--countdown-seconds", type=float,
                          help="first check after this long (default JOBOPS_FIRST_CHECK_SECONDS)")
    schedule.add_argument("--json", action="store_true", help="print JSON for scripts")
    schedule.set_defaults(run=_schedule)

    watch = commands.add_parser("watch", help="show progress until every URN has its outcome")
    watch.add_argument("urns", nargs="*", metavar="URN")
    watch.add_argument("--answer", metavar="FILE", help="watch the URNs of a POST answer")
    watch.add_argument("--context-tag", metavar="KEY=VALUE",
                       help="watch every verification whose context has KEY=VALUE")
    watch.add_argument("--timeout-seconds", type=float, default=3600.0)
    watch.add_argument("--interval-seconds", type=float, default=1.0)
    watch.add_argument("--json", action="store_true", help="print the outcomes as JSON")
    watch.set_defaults(run=_watch)

    metrics = commands.add_parser("metrics", help="serve the fleet's Prometheus metrics")
    metrics.add_argument("--host", default="127.0.0.1")
    metrics.add_argument("--port", type=int, default=9808)
    metrics.set_defaults(run=_metrics)

    limits = commands.add_parser("limits", help="the shared token, rate limit and daily quota")
    limits.add_argument("--json", action="store_true", help="print JSON for scripts")
    limits.set_defaults(run=_limits)

    stuck = commands.add_parser("stuck", help="verifications whose runs keep failing, with "
                                "their last error")
    stuck.add_argument("--json", action="store_true", help="print JSON for scripts")
    stuck.set_defaults(run=_stuck)

    dead = commands.add_parser("dead-letters", help="messages taken off a jobops queue that "
                               "no worker could run (exit 1 if any)")
    dead.add_argument("--limit", type=int, default=100, help="show the most recent N")
    dead.add_argument("--clear", action="store_true",
                      help="show every dead letter and remove them")
    dead.add_argument("--json", action="store_true", help="print JSON for scripts")
    dead.set_defaults(run=_dead_letters)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (ConfigurationError, InvalidRequest) as error:
        print(f"jobops: {error}", file=sys.stderr)
        return 2
    except JobopsError as error:
        print(f"jobops: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
