"""``python -m qftml data TASK --profile ci|paper``: build (or verify) a task's datasets."""

from __future__ import annotations

import argparse
import math
import sys
import time


def _fmt(x: float) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.2f}"


def main(args: argparse.Namespace) -> int:
    """Run the ``data`` command; returns the exit code."""
    from . import api, storage

    start = time.perf_counter()
    try:
        report = api.build(
            args.task,
            args.profile,
            split=args.split,
            jobs=args.jobs,
            verify=not args.no_verify,
        )
    except (KeyError, ValueError, OSError) as exc:
        from ..__main__ import _message

        print(f"error: {_message(exc)}", file=sys.stderr)
        return 2
    by_task: dict[int, list] = {}
    for row in report.rows:
        by_task.setdefault(row["job"].task, []).append(row)
    print(f"Datasets of profile {args.profile!r} in {api.datasets_dir() / args.profile}")
    for task, rows in sorted(by_task.items()):
        n_conf = sum(r["job"].n_total for r in rows)
        counts = {s: sum(r["status"] == s for r in rows) for s in ("hit", "new", "regenerated")}
        gen = sum(r["seconds"] for r in rows)
        print(
            f"  task {task}: {len(rows)} files, {n_conf} configurations: "
            f"{counts['hit']} cached, {counts['new']} generated, "
            f"{counts['regenerated']} regenerated ({gen:.1f} s of generation)"
        )
        if args.verbose:
            for r in sorted(rows, key=lambda r: str(r["job"].relpath())):
                job = r["job"]
                _, attrs = storage.read(job.path(), job.content_key(), verify=False)
                print(
                    f"    {str(job.relpath()):<52} {r['status']:<11} "
                    f"n_skip {attrs['n_skip']:>3}  tau_int {_fmt(attrs['tau_int_pilot'])} "
                    f"-> {_fmt(attrs['tau_int'])}  {r['seconds']:6.1f} s"
                )
    print(f"done in {time.perf_counter() - start:.1f} s ({report.summary()})")
    return 0
