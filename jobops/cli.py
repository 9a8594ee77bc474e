"""``jobops``: the command line. Exit codes: 0 done, 1 the thing checked is not well (timeout,
failures), 2 bad usage or settings, an unreachable Redis included."""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import redis
from kombu.exceptions import OperationalError
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from jobops.core.errors import ConfigurationError, InvalidRequest, JobopsError
from jobops.core.outcomes import OUTCOME_COLUMNS, count_statuses, outcome_cells
from jobops.core.polling import poll
from jobops.core.urns import describe_invalid, is_task_urn, split_for_query
from sandbox.cli import sandbox_command
from settings.urls import masked

if TYPE_CHECKING:
    from jobops.state.dead_letters import DeadLetter
    from settings import Settings
    from workers.runtime import Fleet

UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)
Row = dict[str, Any]


class Unreachable(JobopsError):
    """A Redis that does not answer, named without its password, with the setting to fix."""

    def __init__(self, url: str, setting: str, error: Exception) -> None:
        reason = str(error).rstrip(".").rsplit(". ", 1)[-1] or type(error).__name__
        if isinstance(error, redis.AuthenticationError):
            told = f"refuses jobops ({reason}): check the password in {setting}"
        else:
            told = f"is unreachable ({reason}): start Redis or set {setting}"
        super().__init__(f"Redis at {masked(url)} {told}")


@contextlib.contextmanager
def _reaching(url: str, setting: str) -> Iterator[None]:
    """Redis errors inside name ``url`` and ``setting``."""
    try:
        yield
    except UNREACHABLE as error:
        raise Unreachable(url, setting, error) from None


def _settings() -> Settings:
    """The settings; a bad one is reported before ``workers`` (which exits on it) loads."""
    from settings import get_settings

    return get_settings()


def _fleet() -> Fleet:
    _settings()
    from workers.runtime import runtime

    return runtime()


def _broker(settings: Settings) -> tuple[str, str]:
    """The broker's URL and the setting that gives it."""
    return settings.effective_broker_url, "CELERY_BROKER_URL" if settings.broker_url \
        else "REDIS_URL"


def _on_fleet(verb: Callable[..., int]) -> Callable[..., int]:
    """A verb of the fleet's Redis, which must answer first; its Redis errors name
    REDIS_URL (the broker's, CELERY_BROKER_URL)."""
    @functools.wraps(verb)
    def run(*args: Any, **kwargs: Any) -> int:
        settings = _settings()
        try:
            _fleet().redis.ping()
            return verb(*args, **kwargs)
        except UNREACHABLE as error:
            raise Unreachable(settings.redis_url, "REDIS_URL", error) from None
        except OperationalError as error:  # kombu's, when a publish gives up
            raise Unreachable(*_broker(settings), error) from None
    return run


def _console() -> Console:
    """stdout for people: a terminal's width, or one line per row when piped."""
    return Console(highlight=False, width=None if sys.stdout.isatty() else 100_000)


def _table(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in columns:
        table.add_column(column.upper(), overflow="fold")  # a narrow terminal: no "…"
    for row in rows:
        table.add_row(*(Text(str(cell)) for cell in row))  # Text: no markup in the data
    return table


def _echo_json(value: object) -> None:
    click.echo(json.dumps(value))


def _print_outcomes(outcomes: Sequence[Row]) -> None:
    if outcomes:
        rows = ([*(outcome_cells(o)[c] for c in OUTCOME_COLUMNS), o["task_urn"] or "-"]
                for o in outcomes)
        _console().print(_table([*OUTCOME_COLUMNS, "task urn"], rows))


json_option = click.option("--json", "as_json", is_flag=True, help="print JSON for scripts")


@click.group(help="Verify that jobs sent to LinkedIn's Job Posting API went live. Exit "
             "codes: 0 done, 1 the thing checked is not well (timeout, failures), 2 bad "
             "usage or settings, an unreachable Redis included.")
def jobops() -> None:
    pass


jobops.add_command(sandbox_command)


@jobops.command(help="Run the whole flow locally against the sandbox.")
@click.option("--timeout-seconds", type=float, default=120.0, show_default=True)
def demo(timeout_seconds: float) -> int:
    from jobops.dev.demo import run_demo

    return run_demo(timeout_seconds=timeout_seconds)


def _refuse_malformed(urns: Sequence[str]) -> None:
    bad = [u for u in urns if not is_task_urn(u)]
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise InvalidRequest(f"{describe_invalid(bad[0])}{more}: give task URNs like "
                             "urn:li:simpleJobPostingTask:<id>; nothing was asked")


def _ask(fleet: Fleet, urns: list[str]) -> tuple[dict[str, Row], JobopsError | None]:
    """LinkedIn's status of each URN now, a call at a time; after a failed call, the URNs
    not answered are UNKNOWN."""
    rows: dict[str, Row] = {}
    error: JobopsError | None = None
    for chunk in split_for_query(urns, fleet.settings.max_query_bytes):
        if error is not None:
            rows.update((u, {"task_urn": u, "status": "UNKNOWN"}) for u in chunk)
            continue
        report = poll(fleet.client, chunk, fleet.settings.max_query_bytes, fleet.clock.now())
        error = report.error
        rows.update((u, {"task_urn": u, **entry}) for u, entry in report.decided.items())
        rows.update((u, {"task_urn": u, "status": "INVALID", "errorMessage": why})
                    for u, why in report.invalid.items())
        left = "UNKNOWN" if error is not None else "IN_PROGRESS"
        rows.update((u, {"task_urn": u, "status": left}) for u in report.pending)
    return rows, error


@jobops.command(help="Ask LinkedIn now for the status of task URNs.")
@click.argument("urns", nargs=-1, required=True, metavar="URN...")
@json_option
def status(urns: tuple[str, ...], as_json: bool) -> int:
    _refuse_malformed(urns)
    return _status(list(urns), as_json)


@_on_fleet
def _status(urns: list[str], as_json: bool) -> int:
    found, error = _ask(_fleet(), urns)
    rows = [found.get(u, {"task_urn": u, "status": "UNKNOWN"}) for u in dict.fromkeys(urns)]
    if as_json:
        _echo_json({"results": rows, "error": str(error) if error else None})
    else:
        _console().print(_table(["status", "task urn", "detail"], (
            [r["status"], r["task_urn"], r.get("errorMessage") or ""] for r in rows)))
    if error and not as_json:
        click.echo(f"LinkedIn call failed: {error}", err=True)
    return 1 if error else 0


@jobops.command(help="Read recorded outcomes (no LinkedIn call).")
@click.argument("urns", nargs=-1, metavar="[URN]...")
@click.option("--job", metavar="EXTERNAL_JOB_POSTING_ID",
              help="every recorded outcome of this job")
@json_option
@_on_fleet
def outcome(urns: tuple[str, ...], job: str | None, as_json: bool) -> int:
    if bool(urns) == bool(job):
        raise click.UsageError("give task URNs or --job, not both")
    records = _fleet().records
    if job:
        found = records.for_job(job)
        missing = [] if found else [f"--job {job}"]
    else:
        answers = [records.outcome(urn) for urn in urns]
        found = [o for o in answers if o is not None]
        missing = [urn for urn, o in zip(urns, answers, strict=True) if o is None]
    if as_json:
        _echo_json({"outcomes": found, "missing": missing})
    else:
        _print_outcomes(found)
    for what in [] if as_json else missing:
        click.echo(f"no outcome recorded for {what}", err=True)
    return 1 if missing else 0


def _read_answer(path: str) -> object:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise InvalidRequest(f"--answer {path}: {error.strerror}") from None
    try:
        return json.loads(text)
    except ValueError as error:
        raise InvalidRequest(f"--answer {path} is not JSON: {error}") from None


def _callbacks(items: Sequence[str]) -> dict[str, str]:
    callbacks = {}
    for item in items:
        status_name, _, task = item.partition("=")
        if not task:
            raise InvalidRequest(f"--callback {item!r}: write STATUS=task.name")
        callbacks[status_name] = task
    return callbacks


@jobops.command(help="Verify task URNs or a saved POST answer.")
@click.argument("urns", nargs=-1, metavar="[URN]...")
@click.option("--answer", metavar="FILE",
              help="the JSON answer of POST /v2/simpleJobPostings ('-': stdin)")
@click.option("--operation", required=True,
              type=click.Choice(["CREATE", "UPDATE", "RENEW", "CLOSE"]))
@click.option("--callback", multiple=True, metavar="STATUS=TASK",
              help="a callback task for an outcome status (or DEFAULT)")
@click.option("--context", default="{}", show_default=True, help="a JSON object handed back")
@click.option("--requested-at", help="when LinkedIn was called (ISO 8601)")
@click.option("--countdown-seconds", type=float,
              help="first check after this long (default JOBOPS_FIRST_CHECK_SECONDS)")
@json_option
@_on_fleet
def schedule(urns: tuple[str, ...], answer: str | None, operation: str,
             callback: tuple[str, ...], context: str, requested_at: str | None,
             countdown_seconds: float | None, as_json: bool) -> int:
    from workers.scheduling import schedule_from_answer, verify_urns

    try:
        handed_back = json.loads(context)
    except ValueError as error:
        raise InvalidRequest(f"--context is not JSON: {error}") from None
    common = {"operation": operation, "callbacks": _callbacks(callback),
              "context": handed_back, "requested_at": requested_at,
              "countdown_seconds": countdown_seconds}
    if answer:
        summary = schedule_from_answer(_read_answer(answer), **common)
    elif urns:
        summary = verify_urns(list(urns), **common)
    else:
        raise InvalidRequest("give task URNs or --answer FILE")
    if as_json:
        _echo_json(summary)
    else:
        click.echo(f"scheduled {summary['task_urns']} URNs in "
                   f"{len(summary['verification_ids'])} verification(s), "
                   f"{summary['refused']} refused at posting time: "
                   + " ".join(summary["verification_ids"]))
    return 0


def _tagged_urns(fleet: Fleet, context_tag: str) -> list[str]:
    """The URNs of a context tag, now: the set grows as verifications register."""
    key, equals, value = context_tag.partition("=")
    if not equals:
        raise InvalidRequest("--context-tag takes KEY=VALUE")
    # Pending first: a verification that ends meanwhile writes its records before it
    # leaves the registry, so each URN is found in one or the other.
    pending = fleet.pending.urns_with_context(key, value)
    known = {o["task_urn"] for o in fleet.records.with_context(key, value)}
    urns = sorted(known | pending)
    if not urns:
        raise InvalidRequest(f"no verification has context {context_tag}")
    return urns


def _outcomes(fleet: Fleet, urns: Sequence[str]) -> list[Row | None]:
    from jobops.state.keys import outcome_key

    return fleet.records.outcomes([outcome_key(u) for u in urns])


def _check_verifying(fleet: Fleet, urns: list[str]) -> None:
    """Refuse to wait for URNs nothing verifies: no outcome recorded, none pending."""
    # Pending first, as in _tagged_urns.
    if fleet.pending.verifying(urns) or any(o is not None for o in _outcomes(fleet, urns)):
        return
    these = "this URN" if len(urns) == 1 else f"these {len(urns)} URNs"
    raise InvalidRequest(f"nothing is verifying {these}: none has an outcome or is pending; "
                         "schedule them with `jobops schedule --operation OPERATION URN...` "
                         "(or --answer FILE)")


Snapshot = tuple[list[str], list[Row | None]]


def _snapshots(fleet: Fleet, urns_now: Callable[[], list[str]], timeout_seconds: float,
               interval_seconds: float) -> Iterator[Snapshot]:
    """The URNs watched and their outcomes so far, every interval until all are done or
    the time is up."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        urns = urns_now()
        found = _outcomes(fleet, urns)
        yield urns, found
        if all(o is not None for o in found) or time.monotonic() > deadline:
            return
        time.sleep(interval_seconds)


def _tally(done: list[Row]) -> str:
    return "".join(f" · {n} {s}" for s, n in sorted(count_statuses(done).items()))


def _progress_line(done: list[Row], total: int) -> str:
    width = 30
    filled = width * len(done) // total
    return f"[{'#' * filled}{'.' * (width - filled)}] {len(done)}/{total} done{_tally(done)}"


def _follow(snapshots: Iterator[Snapshot], as_json: bool) -> Snapshot:
    """The last snapshot, shown on the way: a bar on a terminal, a line per change else."""
    last: Snapshot = ([], [])
    if as_json:
        last = deque(snapshots, maxlen=1)[0]
    elif sys.stdout.isatty():
        columns = (BarColumn(), MofNCompleteColumn(), TextColumn("done{task.description}"))
        with Progress(*columns, console=_console()) as bar:
            task = bar.add_task("", total=None)
            for last in snapshots:
                done = [o for o in last[1] if o is not None]
                bar.update(task, total=len(last[0]), completed=len(done),
                           description=_tally(done))
    else:
        shown = ""
        for last in snapshots:
            line = _progress_line([o for o in last[1] if o is not None], len(last[0]))
            if line != shown:
                click.echo(line)
                shown = line
    return last


@jobops.command(help="Show progress until every URN has its outcome.")
@click.argument("urns", nargs=-1, metavar="[URN]...")
@click.option("--answer", metavar="FILE", help="watch the URNs of a POST answer")
@click.option("--context-tag", metavar="KEY=VALUE",
              help="watch every verification whose context has KEY=VALUE")
@click.option("--timeout-seconds", type=float, default=3600.0, show_default=True)
@click.option("--interval-seconds", type=float, default=1.0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the outcomes as JSON")
@_on_fleet
def watch(urns: tuple[str, ...], answer: str | None, context_tag: str | None,
          timeout_seconds: float, interval_seconds: float, as_json: bool) -> int:
    fleet = _fleet()
    urns_now: Callable[[], list[str]]
    if context_tag:
        urns_now = functools.partial(_tagged_urns, fleet, context_tag)
    else:
        fixed = _fixed_urns(urns, answer)
        _check_verifying(fleet, fixed)
        urns_now = fixed.copy
    watched, found = _follow(_snapshots(fleet, urns_now, timeout_seconds, interval_seconds),
                             as_json)
    done = [o for o in found if o is not None]
    pending = [u for u, o in zip(watched, found, strict=True) if o is None]
    if as_json:
        _echo_json({"outcomes": done, "pending": pending})
    else:
        _print_outcomes(done)
    if pending and not as_json:
        click.echo(f"{len(pending)} still pending after {timeout_seconds:.0f} s", err=True)
    return 1 if pending else 0


def _fixed_urns(urns: Sequence[str], answer: str | None) -> list[str]:
    if answer:
        from workers.scheduling import split_post_answer

        urns = split_post_answer(_read_answer(answer))[0]
    if not urns:
        raise InvalidRequest("nothing to watch: give task URNs, --answer FILE or "
                             "--context-tag")
    return list(urns)


@jobops.command(help="Serve the fleet's Prometheus metrics.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=9808, show_default=True)
def metrics(host: str, port: int) -> int:
    fleet = _fleet()
    from workers.metrics_server import serve

    try:
        server = serve(fleet, host, port)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise ConfigurationError(f"port {port} on {host} is in use: stop what listens "
                                     "there or pick another with --port") from None
        raise ConfigurationError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    click.echo(f"metrics on http://{host}:{port}/metrics")
    server.scrape()  # one line on stderr now if Redis does not answer
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


@jobops.command(help="The shared token, rate limit and daily quota.")
@json_option
@_on_fleet
def limits(as_json: bool) -> int:
    fleet = _fleet()
    redis_shown, token = masked(fleet.settings.redis_url), fleet.tokens.describe()
    snapshot = fleet.limiter.snapshot().as_dict()
    if as_json:
        _echo_json({"redis": redis_shown, "token": token, "limits": snapshot})
        return 0
    click.echo(f"redis   {redis_shown}")
    _print_token(token)
    _print_limits(snapshot)
    return 0


def _print_token(token: dict[str, Any]) -> None:
    if token["token"] == "cached":
        click.echo(f"token   cached, {token['age_seconds']:.0f} s old, expires in "
                   f"{token['expires_in_seconds']:.0f} s "
                   f"(renewed in {token['renewed_in_seconds']:.0f} s)")
    else:
        click.echo("token   none cached (the next call fetches one)")
    if token["locked_by"]:
        click.echo(f"        being refreshed by {token['locked_by']}")


def _print_limits(limits: dict[str, Any]) -> None:
    click.echo(f"rate    {limits['permits_this_second']} of {limits['calls_per_second']} "
               "permits used in the last second")
    click.echo(f"quota   {limits['used_today']:,} of {limits['daily_limit']:,} calls used "
               f"today (reserve {limits['reserve']:,}), {limits['left_today']:,} left; "
               f"Redis time {limits['redis_time_utc']}")
    pause = limits["pause"]
    if pause is None:
        click.echo("pause   none")
        return
    left = limits["paused_for_seconds"]
    state = "one call is checking now" if pause["probing"] else f"{left:.1f} s left"
    click.echo(f"pause   {pause['reason']}, step {pause['step']} since {pause['since_utc']}: "
               f"{state}\n        last error: {pause['last_error']}\n        {pause['hint']}")


def _utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


@jobops.command(help="Verifications whose runs keep failing, with their last error.")
@json_option
@_on_fleet
def stuck(as_json: bool) -> int:
    listed = _fleet().stuck.listed()
    if as_json:
        _echo_json({"stuck": listed})
    elif not listed:
        click.echo("no verification is failing")
    else:
        _console().print(_table(
            ["verification", "operation", "urns", "failed runs", "since", "last error"],
            ([e["verification_id"], e["operation"], e["urns"], e["failures"],
              _utc(e["first_failed_at"]), e["last_error"]] for e in listed)))
    return 1 if listed else 0


@jobops.command("dead-letters", help="Messages taken off a jobops queue that no worker could "
                "run (exit 1 if any).")
@click.option("--limit", type=int, default=100, show_default=True,
              help="show the most recent N")
@click.option("--clear", is_flag=True, help="show every dead letter and remove them")
@json_option
def dead_letters(limit: int, clear: bool, as_json: bool) -> int:
    from jobops.state.connect import connect, is_redis
    from jobops.state.dead_letters import DeadLetters

    settings = _settings()
    url, setting = _broker(settings)
    if not is_redis(url):
        raise ConfigurationError(f"the broker at {masked(url)} is not Redis: dead letters "
                                 "are kept only by jobops' Redis transport")
    letters = DeadLetters(connect(url, settings.redis_master_name))
    with _reaching(url, setting):
        listed = letters.take() if clear else letters.listed(limit)
    if as_json:
        _echo_json({"broker": masked(url), "dead_letters": listed})
    elif not listed:
        click.echo(f"no dead letters in {masked(url)}")
    else:
        _print_dead_letters(listed)
    if clear and listed:
        click.echo(f"removed {len(listed)} dead letters", err=True)
    return 1 if listed else 0


def _print_dead_letters(listed: list[DeadLetter]) -> None:
    from jobops.state.dead_letters import body

    def letter(entry: DeadLetter) -> str:
        cut = f", first {len(body(entry))} shown" if entry["truncated"] else ""
        return f"queue {entry['queue']}  {entry['size']} bytes{cut}  {entry['reason']}"

    _console().print(_table(["at", "letter", "body"], (
        [_utc(e["at"]), letter(e), repr(body(e))] for e in listed)))


def _explain(error: Exception) -> tuple[str, int] | None:
    """What to print for an error a verb raised, and the exit code; None: a bug."""
    if isinstance(error, click.exceptions.NoArgsIsHelpError):
        return error.format_message(), 2
    if isinstance(error, click.ClickException):
        where = error.ctx.command_path if isinstance(error, click.UsageError) and error.ctx \
            else "jobops"
        hint = f"\nTry '{where} --help' for help." if isinstance(error, click.UsageError) \
            else ""
        return f"{where}: {error.format_message()}{hint}", error.exit_code
    if isinstance(error, (*UNREACHABLE, OperationalError)):
        error = Unreachable(_settings().redis_url, "REDIS_URL", error)
    if isinstance(error, ConfigurationError | InvalidRequest | Unreachable):
        return f"jobops: {error}", 2
    if isinstance(error, JobopsError):
        return f"jobops: {error}", 1
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line on ``argv`` (default: the process's); returns the exit code."""
    try:
        code = jobops.main(args=list(argv) if argv is not None else None, prog_name="jobops",
                           standalone_mode=False)
    except click.Abort:
        click.echo("interrupted", err=True)
        return 130
    except Exception as error:  # noqa: BLE001 - every known failure gets one or two lines
        explained = _explain(error)
        if explained is None:
            raise
        click.echo(explained[0], err=True)
        return explained[1]
    return int(code or 0)


if __name__ == "__main__":
    raise SystemExit(main())
