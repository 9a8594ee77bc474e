"""The chaos run's command line: a profile, overrides, repeats, where the figures go."""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import shlex
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.chaos import report
from tests.chaos.harness import run_chaos
from tests.chaos.profiles import PROFILES, Profile

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"
#: The long profile's figures are the ones the README quotes, under the historic name.
RESULT_FILES = {"long": "chaos.json", "short": "chaos-short.json"}


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="long")
    for field in dataclasses.fields(Profile):
        if field.name == "name":
            continue
        flag = "--" + field.name.replace("_", "-")
        if field.type == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        else:
            kind = int if field.type == "int" else float
            parser.add_argument(flag, type=kind, default=None, help="overrides the profile")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=1, help="runs in a row, all recorded")
    parser.add_argument("--strict", action="store_true",
                        help="also fail on a missed recovery target or a worker that exited")
    parser.add_argument("--results", type=Path, default=None,
                        help="default: bench/results/chaos.json (long), chaos-short.json")
    return parser.parse_args(argv)


def profile_of(args: argparse.Namespace) -> Profile:
    overrides = {field.name: getattr(args, field.name) for field in dataclasses.fields(Profile)
                 if getattr(args, field.name, None) is not None and field.name != "name"}
    return dataclasses.replace(PROFILES[args.profile], **overrides)


def main(argv: list[str] | None = None) -> int:
    # A SIGTERM (CI's timeout) unwinds the run, so its workers and Redis do not outlive it.
    signal.signal(signal.SIGTERM, _interrupt)
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    profile = profile_of(args)
    results = args.results or RESULTS / RESULT_FILES.get(profile.name, f"chaos-{profile.name}.json")
    seed = args.seed if args.seed is not None else random.randrange(10**6)
    command = shlex.join(["python", "-m", "tests.chaos", *argv])
    runs: list[dict[str, Any]] = []
    for n in range(args.repeat):
        runs.append(_one(profile, seed + n, args.strict, argv) if args.repeat > 1
                    else _here(profile, seed, args.strict))
        report.write(results, profile, command, runs)
    print(f"figures written to {results}")
    return 1 if any(run["checks_failed"] for run in runs) else 0


def _here(profile: Profile, seed: int, strict: bool) -> dict[str, Any]:
    from tests.chaos.run import run

    figures = run(profile, seed, strict)
    report.show(figures)
    return figures


def _one(profile: Profile, seed: int, strict: bool, argv: list[str]) -> dict[str, Any]:
    """One of several runs, in a process of its own: settings are read once per process,
    and each run has a Redis of its own."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "run.json"
        done = run_chaos([*_without_repeat(argv), "--seed", str(seed), "--results", str(path)],
                         capture=False)
        if not path.exists():
            return {"seed": seed, "checks_failed": [f"the run crashed (exit {done.returncode})"]}
        runs: list[dict[str, Any]] = json.loads(path.read_text())["runs"]
        return runs[0]


def _without_repeat(argv: list[str]) -> list[str]:
    parser = argparse.ArgumentParser(add_help=False)
    for flag in ("--repeat", "--seed", "--results"):
        parser.add_argument(flag)
    return parser.parse_known_args(argv)[1]
