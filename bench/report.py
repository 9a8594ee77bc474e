"""Markdown tables from a bench.compare result, as bench/README.md shows them.

    .venv/bin/python -m bench.report [bench/results/compare.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

COLUMNS = (
    ("URNs/s", "urns_per_second", "{:,.0f}"),
    ("calls", "status_calls", "{:,}"),
    ("calls / 40 URN-rounds", "calls_per_40_urn_rounds", "{:.2f}"),
    ("worker CPU s / 1k URNs", "worker_cpu_per_1000_urns", "{:.2f}"),
    ("Redis cmds / URN", "redis_commands_per_urn", "{:.1f}"),
    ("p50 / p99 flip→callback, s", None, ""),
    ("worker PSS idle → peak, MB", None, ""),
    ("Redis B / pending URN", "redis_bytes_per_pending_urn", "{:,.0f}"),
    ("Redis B / delivered URN", "redis_bytes_per_done_urn", "{:,.0f}"),
)


def cell(run: dict[str, Any], key: str | None, fmt: str, title: str) -> str:
    if title.startswith("p50"):
        return (f"{run['p50_flip_to_callback_ms'] / 1000:.1f} / "
                f"{run['p99_flip_to_callback_ms'] / 1000:.1f}")
    if title.startswith("worker PSS"):
        return f"{run['worker_pss_idle_mb']:.0f} → {run['worker_pss_peak_mb']:.0f}"
    value = run.get(key or "")
    return "–" if value is None else fmt.format(value)


def tables(report: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    workloads: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for run in report["runs"]:
        workloads.setdefault((run["workload"], run["processes"]), []).append(run)
    for (workload, processes), runs in workloads.items():
        lines += ["", f"**{workload}, {processes} worker process"
                  f"{'es' if processes > 1 else ''}** ({runs[0]['urns']:,} URNs, "
                  f"{runs[0]['operations']:,} operations)", "",
                  "| implementation | " + " | ".join(t for t, _, _ in COLUMNS) + " |",
                  "|---" * (len(COLUMNS) + 1) + "|"]
        for run in runs:
            lines.append(f"| {run['implementation']} | "
                         + " | ".join(cell(run, key, fmt, title)
                                      for title, key, fmt in COLUMNS) + " |")
    lines += ["", "| target | where | figure | limit | met |", "|---|---|---|---|---|"]
    for target in report.get("targets", []):
        lines.append(f"| {target['target']} | {target['where']} | {target['figure']:.2f} | "
                     f"{target['limit']} | {'yes' if target['met'] else '**no**'} |")
    return lines


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else Path(__file__).parent / "results" / "compare.json"
    print("\n".join(tables(json.loads(path.read_text()))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
