"""What a run measured, what it must show to count, and where the figures go."""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any

import redis

from sandbox import SandboxState
from sandbox.state import FAULTS
from tests.chaos.disruptions import Disruptions
from tests.chaos.keys import COPIES_KEY, DROPPED_KEY, OUTCOMES_KEY
from tests.chaos.profiles import Profile

#: The fault kinds the issue names; "slow" (an answer late but in time) is counted too.
REQUIRED_FAULTS = ("error_5xx", "timeout", "reset", "malformed", "truncated", "throttle",
                   "revoke")
SHOWN = ("urns_scheduled", "operations", "outcomes_delivered", "copies_seen_by_consumer",
         "lost", "duplicated", "wrong", "kills", "redis_kills", "urns_pending_at_redis_kill",
         "garbage_messages_pushed", "workers_that_exited_by_themselves",
         "worker_unrecoverable_errors",
         "seconds_from_last_disruption_to_last_outcome", "api_faults_injected", "left_at_end",
         "wall_seconds", "checks_failed")


def measure(store: redis.Redis, expected: dict[str, str], state: SandboxState,
            disruptions: Disruptions, exits: dict[str, int]) -> dict[str, Any]:
    """The figures, from the consumer's records against what the sandbox decided."""
    records = [json.loads(raw) for raw in store.lrange(OUTCOMES_KEY, 0, -1)]
    per_urn: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        per_urn.setdefault(record["outcome"]["task_urn"], []).append(record["outcome"])
    lost = sorted(set(expected) - set(per_urn))
    duplicated = sorted(urn for urn, got in per_urn.items() if len(got) > 1)
    wrong = sorted(urn for urn, got in per_urn.items()
                   if urn not in expected or got[0]["status"] != expected[urn])
    last_outcome_at = max((record["recorded_at"] for record in records), default=None)
    d = disruptions
    return {
        "urns_scheduled": len(expected),
        "outcomes_delivered": len(per_urn),
        "copies_seen_by_consumer": int(store.get(COPIES_KEY) or 0),
        "copies_dropped_by_consumer_dedup": int(store.get(DROPPED_KEY) or 0),
        "lost": len(lost),
        "duplicated": len(duplicated),
        "wrong": len(wrong),
        "kills": {"during_scheduling": d.kills_during_scheduling,
                  "after_scheduling": d.kills_after_scheduling},
        "redis_kills": d.redis_kills,
        "redis_downtime_seconds": _rounded(d.redis_downtime_seconds),
        "urns_pending_at_redis_kill": d.urns_pending_at_redis_kill,
        "urns_undelivered_at_redis_kill": d.urns_undelivered_at_redis_kill,
        "garbage_messages_pushed": d.garbage_messages_pushed,
        "workers_that_exited_by_themselves": exits["jobops"],
        "consumers_that_exited_by_themselves": exits["consumer"],
        "api_faults_injected": {kind: state.faults.get(kind, 0) for kind in FAULTS},
        "status_calls": len(state.status_calls()),
        # Negative if the last outcome came in before the last disruption.
        "seconds_from_last_disruption_to_last_outcome": _rounded(
            None if last_outcome_at is None else last_outcome_at - d.last_at),
        "urns_undelivered_at_last_disruption": d.urns_undelivered_at_last_disruption,
        "examples": {"lost": lost[:5], "duplicated": duplicated[:5], "wrong": wrong[:5]},
    }


def judge(report: dict[str, Any], profile: Profile, strict: bool) -> list[str]:
    """The checks a run fails on: nothing lost, doubled or wrong, and every disruption it
    claims actually happened. Recovery time and worker exits are figures, checked only
    with ``strict``."""
    failed = [f"{key}: {report[key]}" for key in ("lost", "duplicated", "wrong")
              if report[key]]
    failed += [f"fault {kind} never fired" for kind in REQUIRED_FAULTS
               if not report["api_faults_injected"][kind]]
    kills = report["kills"]
    if profile.kills and not (kills["during_scheduling"] and kills["after_scheduling"]):
        failed.append(f"kills not both during and after scheduling: {kills}")
    if profile.redis_kill and not (report["redis_kills"]
                                   and (report["urns_pending_at_redis_kill"] or 0) > 0):
        failed.append("Redis was not killed while URNs were pending")
    if profile.garbage and not report["garbage_messages_pushed"]:
        failed.append("no garbage was pushed")
    if strict:
        failed += _missed_targets(report)
    return failed


def _missed_targets(report: dict[str, Any]) -> list[str]:
    target = report["targets"]
    missed = []
    if not target["recovery_met"]:
        missed.append(f"last outcome {report['seconds_from_last_disruption_to_last_outcome']}"
                      f" s after the last disruption (target {target['recovery_seconds']} s)")
    if report["workers_that_exited_by_themselves"]:
        missed.append(f"{report['workers_that_exited_by_themselves']} workers exited")
    if report.get("worker_unrecoverable_errors"):
        missed.append(f"{report['worker_unrecoverable_errors']} unrecoverable worker errors")
    return missed


def targets(report: dict[str, Any], profile: Profile) -> dict[str, Any]:
    recovery = report["seconds_from_last_disruption_to_last_outcome"]
    return {"recovery_seconds": profile.recovery_target_seconds,
            "recovery_met": (report["lost"] == 0 and recovery is not None
                             and recovery <= profile.recovery_target_seconds),
            "no_worker_exits_met": (report["workers_that_exited_by_themselves"] == 0
                                    and not report.get("worker_unrecoverable_errors"))}


def show(report: dict[str, Any]) -> None:
    for key in SHOWN:
        print(f"{key:>45}: {report[key]}")
    print(f"{'targets':>45}: {report['targets']}", flush=True)


def write(path: Path, profile: Profile, command: str, runs: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    parameters = {**asdict(profile), "recovery_target_seconds": profile.recovery_target_seconds}
    document = {"profile": profile.name, "parameters": parameters, "command": command,
                "commit": _commit(), "runs": runs}
    path.write_text(json.dumps(document, indent=2) + "\n")


def _commit() -> str | None:
    """The commit the figures belong to, marked when its code differs from it (the
    figures themselves, in bench/results, do not count)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no",
                                  "--", ".", ":!bench/results"],
                                 capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+changes" if changed else "")


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 2)
