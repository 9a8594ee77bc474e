"""The functions that dominate a py-spy profile (collapsed stacks), by inclusive share.

    .venv/bin/python -m bench.profile_summary bench/results/profile-jobops-single-1.txt
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

# Leaf frames of a thread that sleeps between looks; py-spy on this VM samples idle
# threads too, so what remains is closer to wall time than CPU time.
IDLE_LEAVES = ("time.sleep", "_loop (workers/", "poll (", "select (", "wait (",
               "_wait_for_tstate_lock")
_LOCATION = re.compile(r" \((?P<file>[^:)]+)(?::\d+)?\)$")


def summarize(path: Path, top: int = 30, match: str = "") -> list[str]:
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        leaf = stack.rsplit(";", 1)[-1]
        if any(idle in leaf for idle in IDLE_LEAVES):
            continue
        total += count
        seen = set()
        for frame in stack.split(";"):
            name = frame.strip()
            location = _LOCATION.search(name)
            if location:
                short = location["file"].split("site-packages/")[-1].split("/work/main/")[-1]
                name = name[:location.start()] + f" ({short})"
            if name not in seen:
                seen.add(name)
                inclusive[name] += count
    lines = [f"{total} samples"]
    for name, count in inclusive.most_common():
        if match and match not in name:
            continue
        lines.append(f"{100 * count / max(1, total):5.1f}%  {name}")
        if len(lines) > top:
            break
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--match", default="", help="only frames whose text contains this")
    args = parser.parse_args()
    print("\n".join(summarize(args.profile, args.top, args.match)))


if __name__ == "__main__":
    main()
