"""Command line: ``python -m qftml book|data|...``.

A fault of the input (unknown profile, malformed ``profiles.yml``, a file-system error,
a bad parameter) ends in one line naming it and exit status 2; ``QFTML_DEBUG=1`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="qftml", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p_book = sub.add_parser("book", help="execute out-of-date notebooks and build the book")
    p_book.add_argument("--profile", default="ci", help="parameter profile (profiles.yml)")
    p_book.add_argument("--jobs", type=int, default=1, help="notebooks executed in parallel")
    p_book.add_argument("--force", action="store_true", help="re-execute every notebook")
    p_book.add_argument("--only", nargs="*", help="execute only these notebook stems")
    p_book.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="train the grids of instances on this Dask scheduler (tcp://host:8786); "
        "default: $QFTML_SCHEDULER, else local worker processes on all cores",
    )
    p_book.add_argument(
        "--no-html", action="store_true", help="execute notebooks only; do not render the book"
    )
    p_book.add_argument(
        "--notebooks-dir",
        default=None,
        help="execute notebooks from this folder instead (implies --no-html)",
    )

    p_data = sub.add_parser(
        "data",
        help="build (or verify) the datasets of task 1, 2, 3 or all",
        description="Generate every missing, stale or corrupt dataset file of a task and "
        "verify the others (content key and checksum); prints what it did.",
    )
    p_data.add_argument("task", help="1, 2, 3 (or task1, ...) or all")
    p_data.add_argument("--profile", default="ci", help="parameter profile (profiles.yml)")
    p_data.add_argument("--split", default=None, help="only this split (train, val, test)")
    p_data.add_argument("--jobs", type=int, default=None, help="processes (default: all cores)")
    p_data.add_argument("--no-verify", action="store_true", help="skip cached files' checksums")
    p_data.add_argument("-v", "--verbose", action="store_true", help="one line per file")

    p_res = sub.add_parser(
        "results",
        help="the full-statistics results store (results/): run, pages, verify, summary",
        description="Train the missing instances of the store's experiments (resumable), "
        "check the store against today's code and data, or print what it covers.",
    )
    res = p_res.add_subparsers(dest="action", required=True)
    r_run = res.add_parser("run", help="train and store every missing instance (resumable)")
    r_run.add_argument(
        "experiment", nargs="?", default="task1-comparison",
        help="task1-comparison, task2-detection, task3-counting (instances) or task1-search, "
        "task2-search (architecture searches)",
    )  # fmt: skip
    r_run.add_argument("--profile", default="paper", help="parameter profile (profiles.yml)")
    r_run.add_argument("--sizes", type=int, nargs="*", help="only these N_train")
    r_run.add_argument("--hours", type=float, default=None, help="stop after this much time")
    r_run.add_argument("--workers", type=int, default=None, help="local workers (0: in-process)")
    r_run.add_argument("--scheduler", default=None, metavar="ADDRESS", help="Dask scheduler")
    r_run.add_argument("--families", nargs="*", help="a search: only these families")
    r_ver = res.add_parser("verify", help="check every entry; re-evaluate and retrain samples")
    r_ver.add_argument("--sample", type=int, default=2, help="entries to re-evaluate")
    r_ver.add_argument("--retrain", type=int, default=1, help="entries to retrain")
    r_ver.add_argument(
        "--retrain-max-seconds", type=float, default=None,
        help="retrain only entries whose stored training took at most this long",
    )  # fmt: skip
    r_ver.add_argument("--seed", type=int, default=0, help="seed of the random sample")
    r_ver.add_argument(
        "--rerun-pages", type=int, default=1,
        help="stored pages to re-execute (the cheapest within --retrain-max-seconds)",
    )  # fmt: skip
    r_pag = res.add_parser(
        "pages", help="execute the pages whose verdicts the landing page shows; store them"
    )
    r_pag.add_argument("stems", nargs="*", help="only these pages (default: all of them)")
    r_pag.add_argument("--profile", default="paper", help="parameter profile (profiles.yml)")
    r_pag.add_argument("--force", action="store_true", help="also pages whose record is current")
    r_sum = res.add_parser("summary", help="what the store covers")
    r_sum.add_argument("--json", action="store_true", help="as JSON")
    r_sum.add_argument("--profile", default="paper", help="the profile the entries must match")

    args = parser.parse_args(argv)
    try:
        return _dispatch(args)
    except (OSError, KeyError, ValueError) as exc:  # a person's fault: one line, no traceback
        if os.environ.get("QFTML_DEBUG"):
            raise
        print(f"qftml {args.command}: error: {_message(exc)}", file=sys.stderr)
        return 2


def _message(exc: BaseException) -> str:
    """One line for a person: the exception's text (a KeyError's without its quotes), the
    path an OS error concerns, and what a file where a folder belongs means."""
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in str(text):
        text = f"{exc.filename}: {text}"
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        text = f"{text} (a file stands where a folder is needed)"
    return " ".join(str(text).split()) or type(exc).__name__


def _dispatch(args) -> int:
    if args.command == "book":
        from .profiles import load_profiles

        names = sorted(load_profiles())
        if args.profile not in names:
            raise KeyError(f"unknown profile {args.profile!r}; defined: {names}")
        from . import book

        if args.scheduler:
            os.environ["QFTML_SCHEDULER"] = args.scheduler  # read by every notebook's kernel

        return book.main(
            profile=args.profile,
            jobs=args.jobs,
            force=args.force,
            stems=args.only,
            html=not args.no_html,
            notebooks_dir=args.notebooks_dir,
        )
    if args.command == "data":
        from .datasets import cli as data_cli

        return data_cli.main(args)
    if args.command == "results":
        return _results(args)
    return 2


def _results(args) -> int:
    import json

    from . import results, search_store, verdicts

    known = [*results.EXPERIMENTS, *search_store.EXPERIMENTS]
    if args.action == "run" and args.experiment not in known:
        raise ValueError(f"unknown experiment {args.experiment!r}; choose one of {known}")
    if args.action == "run" and args.experiment in search_store.EXPERIMENTS:
        done = search_store.run(args.profile, experiment=args.experiment,
                                families=args.families, hours=args.hours)  # fmt: skip
        print("finished trials: " + ", ".join(f"{f} {n}" for f, n in done.items()))
        return 0
    if args.action == "run":
        out = results.run(
            args.experiment, args.profile, sizes=args.sizes, hours=args.hours,
            workers=args.workers, scheduler=args.scheduler,
        )  # fmt: skip
        print(f"{out['stored']} of {out['planned']} instances stored ({out['trained']} new)")
        return 0
    if args.action == "verify":
        ok = results.verify(
            args.sample, retrain=args.retrain, seed=args.seed,
            retrain_max_seconds=args.retrain_max_seconds,
        )  # fmt: skip
        ok &= search_store.verify(retrain=args.retrain, max_seconds=args.retrain_max_seconds)
        ok &= verdicts.verify(args.rerun_pages, max_seconds=args.retrain_max_seconds)
        return 0 if ok else 1
    if args.action == "pages":
        done = verdicts.run_pages(args.stems or None, args.profile, force=args.force)
        print(f"{len(done)} page(s) executed and stored")
        return 0
    cover = results.summary(args.profile)
    if args.json:
        print(json.dumps(cover, indent=1))
    else:
        for task, rows in cover.items():
            for r in rows:
                print(task, " ".join(f"{k}={v}" for k, v in r.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
