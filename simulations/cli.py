"""``lowrank-theory reproduce``: run the synthetic experiments and draw their figures.

Registered by ``lowrank_theory.cli`` through :func:`add_parser`. The experiments, numpy work
and dask are imported only when the command runs.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from lowrank_theory._validation import int_at_least

#: Experiments ``--only`` accepts, in the order ``reproduce`` runs them (the registry in
#: ``simulations.experiments`` has the same names; a test keeps the two in step).
EXPERIMENT_NAMES: tuple[str, ...] = ("vary", "phase", "rate", "landscape", "schemes")
#: ``--executor`` choices.
EXECUTOR_NAMES: tuple[str, ...] = ("local", "dask")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``reproduce`` subcommand to ``subparsers`` and return its parser."""
    parser = subparsers.add_parser(
        "reproduce",
        help="regenerate the paper's synthetic result tables and figures",
        description="Run the synthetic experiments (resumable: finished runs are skipped), "
                    "write tidy tables to OUT/<experiment>.csv (.parquet with pyarrow) and "
                    "figures to OUT/figures.",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="size", action="store_const", const="quick",
                      help="small sizes, all experiments in a few minutes (default)")
    size.add_argument("--full", dest="size", action="store_const", const="full",
                      help="the paper's sizes")
    parser.set_defaults(size="quick")
    parser.add_argument("--only", nargs="+", choices=EXPERIMENT_NAMES, metavar="NAME",
                        help=f"run only these experiments (choose from {', '.join(EXPERIMENT_NAMES)})")
    parser.add_argument("--out", type=Path, default=Path("results"),
                        help="output directory (default: results)")
    parser.add_argument("--jobs", type=int_at_least(1, "--jobs"), default=1,
                        help="parallel worker processes (default: 1)")
    parser.add_argument("--executor", choices=EXECUTOR_NAMES, default="local",
                        help="local processes (default) or a dask.distributed cluster")
    parser.add_argument("--scheduler", metavar="ADDRESS", default=None,
                        help="dask scheduler address (with --executor dask); default: start a "
                             "LocalCluster of --jobs workers")
    parser.add_argument("--no-figures", dest="figures", action="store_false",
                        help="write the tables only")
    parser.add_argument("--publish", action="store_true",
                        help="also copy the README's PNGs into figures/generated/")
    parser.set_defaults(func=reproduce, _parser=parser)
    return parser


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def reproduce(args: argparse.Namespace) -> int:
    """Handler of ``reproduce``: run the sweeps, write tables and figures; return the exit code.

    Exit codes: 0 done, 2 a usage error (bad ``--out``, or the folder is in use by another
    run), checked before any computation.
    """
    if args.scheduler is not None and args.executor != "dask":
        print("error: --scheduler needs --executor dask", file=sys.stderr)
        return 2
    from simulations.runner import (
        OutputDirError,
        OutputLocked,
        RunFileWarning,
        check_output_dir,
        output_lock,
    )

    try:
        out = check_output_dir(args.out)
        with output_lock(out), warnings.catch_warnings():
            warnings.simplefilter("always", RunFileWarning)
            warnings.showwarning = _print_warning  # restored by catch_warnings
            _reproduce(args, out)
    except (OutputDirError, OutputLocked) as exc:
        print(f"error: --out: {exc}", file=sys.stderr)
        return 2
    return 0


def _reproduce(args: argparse.Namespace, out: Path) -> None:
    from simulations.experiments import EXPERIMENTS
    from simulations.runner import make_executor, run_experiment

    names = list(dict.fromkeys(args.only or EXPERIMENT_NAMES))
    start = time.perf_counter()
    print(f"reproduce --{args.size}: {', '.join(names)} -> {out} "
          f"({args.jobs} job(s), executor {args.executor})", flush=True)
    with make_executor(args.executor, args.jobs, args.scheduler) as executor:
        for name in names:
            result = run_experiment(EXPERIMENTS[name], out, size=args.size, executor=executor)
            print(result.summary(), flush=True)
    if args.figures:
        from figures import make_figures, publish

        paths = make_figures(out, out / "figures", names)
        print(f"figures: {len({p.stem for p in paths})} figures (PNG and PDF) -> "
              f"{out / 'figures'}")
        if args.publish:
            copied = publish(paths)
            if copied:
                print(f"published {len(copied)} PNGs -> {copied[0].parent}")
    print(f"done in {time.perf_counter() - start:.1f} s")
