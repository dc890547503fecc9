"""``lowrank-theory reproduce``: run the synthetic experiments and draw their figures.

Registered by :mod:`lowrank_theory.cli` through :func:`add_parser`. Dask and the figures are
imported only when the command runs.

Output: what was computed (a line per experiment, or one JSON object with ``--json``) goes to
stdout; progress (the opening line, progress bars, warnings, the closing time) goes to stderr.

Every mistake in the input exits 2 with a message naming it, before anything is written: the
options, the sweep file, the seeds, the sweep's size and estimated memory (``--force`` lifts the
limits), the scheduler's address (it is contacted first) and the output folder. A problem met
while writing (a full disk, a folder where a file belongs) exits 2 too, keeping what finished.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from lowrank_theory.cli._args import (
    add_force_option,
    add_names_option,
    add_seed_options,
    int_at_least,
    out_folder,
    output_error,
    scheduler_address,
    selected_seeds,
)
from lowrank_theory.figures.options import add_figure_options

__all__ = ["DEFAULT_OUT", "add_parser", "reproduce"]

#: Default output folder; a sweep file's results go to ``DEFAULT_OUT/<file stem>`` (the stem
#: made safe: :func:`lowrank_theory.simulations.sweepfile.output_name`).
DEFAULT_OUT = Path("results")


def _style_error(args: argparse.Namespace) -> str | None:
    """A bad --style file, found before any computation."""
    if getattr(args, "style", None) is None:
        return None
    from lowrank_theory.figures.style import load_style

    try:
        load_style(args.style)
    except ValueError as exc:
        return f"--style: {exc}"
    return None


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``reproduce`` subcommand to ``subparsers`` and return its parser."""
    from lowrank_theory.simulations.executors import EXECUTORS
    from lowrank_theory.simulations.experiments import EXPERIMENTS

    parser = subparsers.add_parser(
        "reproduce",
        help="regenerate the paper's synthetic result tables and figures, or run a sweep file",
        description="Run the synthetic experiments (resumable: finished runs are skipped), "
                    "write tidy tables to OUT/<experiment>.csv (.parquet with pyarrow) and "
                    "figures to OUT/figures. With --config, run the sweep a TOML file "
                    "describes (see examples/ and docs/guide.md). Results go to stdout, "
                    "progress to stderr.",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="size", action="store_const", const="quick",
                      help="small sizes, all experiments in a few minutes (default)")
    size.add_argument("--full", dest="size", action="store_const", const="full",
                      help="the paper's sizes")
    size.add_argument("--config", type=Path, metavar="FILE.toml",
                      help="run the sweep this file describes: an experiment, a grid of config "
                           "values and seeds; checked before anything is written")
    parser.set_defaults(size="quick")
    add_names_option(parser, "--only", list(EXPERIMENTS), help="run only these experiments")
    add_seed_options(parser, default="the sweep's seeds")
    parser.add_argument("--out", type=out_folder(), default=None, metavar="DIR",
                        help=f"output directory (default: {DEFAULT_OUT}, or "
                             f"{DEFAULT_OUT}/<file stem> with --config)")
    parser.add_argument("--jobs", type=int_at_least(1, "--jobs"), default=1, metavar="N",
                        help="parallel worker processes (default: 1)")
    parser.add_argument("--executor", choices=EXECUTORS, default="local",
                        help="local processes (default) or a dask.distributed cluster")
    parser.add_argument("--scheduler", metavar="ADDRESS", default=None, type=scheduler_address,
                        help="dask scheduler address, tcp://host:port (with --executor dask); "
                             "default: start a LocalCluster of --jobs workers")
    parser.add_argument("--no-figures", dest="figures", action="store_false",
                        help="write the tables only")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="FIELD=V1,V2",
                        help="sweep a config field over these values instead of the size's "
                             "configs (repeatable; with one --only experiment, or on top of "
                             "--config's grid), e.g. --only vary --set sigma=0.01,0.1,1 --set "
                             "T=3; checked like a sweep file (lowrank-theory describe lists "
                             "the fields)")
    add_figure_options(parser)
    parser.add_argument("--publish", action="store_true",
                        help="also copy the README's PNGs into figures/generated/")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (per experiment: units computed and "
                             "skipped, tables, seconds; the figures) instead of text")
    add_force_option(parser)
    parser.add_argument("--dry-run", action="store_true",
                        help="check everything (options, sweep file, sizes) and print what "
                             "would run, its units and estimated memory; write nothing")
    parser.set_defaults(func=reproduce, _parser=parser)
    return parser


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _usage_error(args: argparse.Namespace) -> str | None:
    """The first usage error among the options' combinations, or None."""
    if args.scheduler is not None and args.executor != "dask":
        return "--scheduler needs --executor dask"
    if args.config is not None and args.only:
        return "--only does not apply to --config (the file names its experiment)"
    if args.config is not None and args.publish:
        return "--publish copies the paper's figures; it does not apply to --config"
    if args.overrides and args.config is None and len(args.only or ()) != 1:
        return ("--set sweeps the fields of one experiment: name it with --only NAME (or give "
                "--config FILE)")
    if args.overrides and args.publish:
        return "--publish copies the paper's figures; it does not apply to --set"
    return _style_error(args)


def _seed_count(args: argparse.Namespace) -> int | None:
    """How many seeds ``--seed``/``--seeds`` ask for (None: neither), without listing them."""
    if getattr(args, "seed", None) is not None:
        return 1
    return getattr(args, "seeds", None)


def _size_error(args: argparse.Namespace, jobs: list) -> str | None:
    """The first sweep of ``jobs`` too large to run (runs, estimated memory), or None."""
    from lowrank_theory.simulations.budget import SweepTooLarge, check_memory

    for experiment, sweep, _ in jobs:
        per_unit = len(sweep.seeds) if experiment.seeds_per_unit is None else min(
            experiment.seeds_per_unit, len(sweep.seeds))
        try:
            check_memory(sweep.configs, per_unit, args.jobs, force=args.force)
        except SweepTooLarge as exc:
            return f"{experiment.name}: {exc}"
    return None


def _dry_run(args: argparse.Namespace, out: Path, jobs: list) -> dict[str, Any]:
    """What would run, for ``--dry-run``: per experiment its configs, seeds, units, memory."""
    from lowrank_theory.simulations.budget import check_memory, format_bytes

    report: dict[str, Any] = {"out": str(out), "dry_run": True, "experiments": []}
    for experiment, sweep, _ in jobs:
        per_unit = min(experiment.seeds_per_unit or len(sweep.seeds), len(sweep.seeds))
        units = len(sweep.configs) * -(-len(sweep.seeds) // per_unit)  # counted, not listed
        memory = check_memory(sweep.configs, per_unit, args.jobs, force=True)
        report["experiments"].append({
            "experiment": experiment.name, "configs": len(sweep.configs),
            "seeds": len(sweep.seeds), "units": units, "memory_bytes": memory})
        if not args.json:
            print(f"{experiment.name}: {len(sweep.configs)} configs x {len(sweep.seeds)} seeds "
                  f"in {units} units, about "
                  f"{'?' if memory is None else format_bytes(memory)} of memory at once -> "
                  f"{out} (dry run: nothing written)")
    return report


def reproduce(args: argparse.Namespace) -> int:
    """Handler of ``reproduce``: run the sweeps, write tables and figures; return the exit code.

    Exit codes: 0 done, 2 a usage error (conflicting options, a sweep file that fails
    validation, seeds or a sweep past the size limits, an unreachable scheduler, a bad
    ``--out``, a folder in use by another run), all checked before any computation and, for a
    sweep file, before anything is written; also 2 when writing fails (a full disk), with what
    finished kept.
    """
    error = _usage_error(args)
    if error is not None:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from lowrank_theory.simulations.budget import SweepTooLarge, check_run_count
    from lowrank_theory.simulations.executors import SchedulerUnreachable, probe_scheduler
    from lowrank_theory.simulations.experiments import EXPERIMENTS
    from lowrank_theory.simulations.runner import (
        OutputDirError,
        OutputLocked,
        RunFileWarning,
        check_output_dir,
        output_lock,
    )
    from lowrank_theory.simulations.store import InvalidRunFile

    n_seeds = _seed_count(args)
    seeds = selected_seeds(args)
    if args.config is not None:
        from lowrank_theory.simulations.sweepfile import (
            SweepFileError,
            load_sweep_file,
            output_name,
            parse_overrides,
        )

        try:
            spec = load_sweep_file(args.config, force=args.force,
                                   overrides=parse_overrides(args.overrides))
            if n_seeds is not None:
                check_run_count(len(spec.sweep.configs), n_seeds, force=args.force)
        except (SweepFileError, SweepTooLarge) as exc:
            print(f"error: --config {exc}", file=sys.stderr)
            return 2
        sweep = spec.sweep if seeds is None else dataclasses.replace(spec.sweep, seeds=seeds)
        jobs = [(spec.experiment, sweep, _neural_options(spec, args.jobs))]
        out = args.out if args.out is not None else DEFAULT_OUT / output_name(args.config)
        what = f"--config {args.config}: {spec.experiment.name}, {len(sweep.configs)} configs"
    elif args.overrides:
        made = _set_sweep(args, seeds)
        if isinstance(made, str):
            print(f"error: {made}", file=sys.stderr)
            return 2
        jobs, out, what = made
    else:
        names = args.only or list(EXPERIMENTS)
        if n_seeds is not None:
            try:
                for name in names:
                    check_run_count(len(EXPERIMENTS[name].sweep(args.size).configs), n_seeds,
                                    force=args.force, what=f"{name} --{args.size}")
            except SweepTooLarge as exc:
                print(f"error: --seeds: {exc}", file=sys.stderr)
                return 2
        jobs = []
        for name in names:
            experiment = EXPERIMENTS[name]
            sweep = experiment.sweep(args.size)
            if seeds is not None:
                sweep = dataclasses.replace(sweep, seeds=seeds)
            jobs.append((experiment, sweep, None))
        out = args.out if args.out is not None else DEFAULT_OUT
        what = f"--{args.size}: {', '.join(names)}"
    error = _size_error(args, jobs)
    if error is not None:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.dry_run:
        report = _dry_run(args, out, jobs)
        if args.json:
            print(json.dumps(report, indent=2))
        return 0
    if seeds is not None:
        what += (f", seeds {', '.join(map(str, seeds))}" if len(seeds) <= 20
                 else f", {len(seeds)} seeds {seeds[0]}..{seeds[-1]}")
    figure_errors: tuple[type[Exception], ...] = ()
    if args.figures:
        from lowrank_theory.figures.io import TableError

        figure_errors = (TableError,)
    try:
        if args.scheduler is not None:
            probe_scheduler(args.scheduler)  # before --out is touched
        out = check_output_dir(out)
        with output_lock(out), warnings.catch_warnings():
            warnings.simplefilter("always", RunFileWarning)
            warnings.showwarning = _print_warning  # restored by catch_warnings
            report = _run(args, out, jobs, what)
    except (OutputDirError, OutputLocked) as exc:
        print(f"error: --out: {exc}", file=sys.stderr)
        return 2
    except figure_errors as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SchedulerUnreachable as exc:
        print(f"error: --scheduler: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:  # --executor dask without dask.distributed
        print(f"error: --executor {args.executor}: {exc}", file=sys.stderr)
        return 2
    except InvalidRunFile as exc:  # a run file changed under the sweep
        print(f"error: {exc}; rerun to recompute it", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {output_error(exc)}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=2))
    return 0


def _run(args: argparse.Namespace, out: Path, jobs: list, what: str) -> dict[str, Any]:
    """Run ``jobs`` (experiment, sweep, options) into ``out``; return the JSON report."""
    from lowrank_theory.simulations.runner import make_executor, run_experiment

    start = time.perf_counter()
    text = not args.json
    _progress(f"reproduce {what} -> {out} ({args.jobs} job(s), executor {args.executor})")
    report: dict[str, Any] = {"out": str(out), "experiments": [], "figures": []}
    with make_executor(args.executor, args.jobs, args.scheduler) as executor:
        for experiment, sweep, options in jobs:
            result = run_experiment(experiment, out, sweep=sweep, executor=executor,
                                    options=options)
            report["experiments"].append(result.to_dict())
            if text:
                print(result.summary(), flush=True)
    if args.figures:
        from lowrank_theory.figures import make_figures, publish
        from lowrank_theory.figures.facets import FigureWarning

        with warnings.catch_warnings():
            warnings.simplefilter("always", FigureWarning)
            warnings.showwarning = _print_warning  # restored by catch_warnings
            paths = make_figures(out, out / "figures", [e.name for e, _, _ in jobs],
                                 formats=args.formats, dpi=args.dpi, style=args.style,
                                 band=args.band)
        report["figures"] = [str(p) for p in paths]
        if text:
            print(f"figures: {len({p.stem for p in paths})} figures "
                  f"({', '.join(f.upper() for f in args.formats)}) -> {out / 'figures'}")
        if args.publish:
            copied = publish(paths)
            report["published"] = [str(p) for p in copied]
            if copied and text:
                print(f"published {len(copied)} PNGs -> {copied[0].parent}")
    from lowrank_theory.figures.report import write_report

    page = write_report(out, [e.name for e, _, _ in jobs], _command(args), band=args.band)
    report["report"] = str(page)
    if text:
        print(f"report: {page}")
    report["seconds"] = time.perf_counter() - start
    _progress(f"done in {report['seconds']:.1f} s")
    return report


def _command(args: argparse.Namespace) -> str:
    """The command line of this run, as the report shows it."""
    argv = getattr(args, "argv", None)
    if argv is None:
        argv = sys.argv[1:]
    return shlex.join(["lowrank-theory", *argv])


def _neural_options(spec: Any, jobs: int) -> dict[str, Any]:
    """A sweep file's options, plus the torch threads of each worker for a neural experiment.

    Each of ``jobs`` worker processes gets an equal share of the CPUs (as ``lowrank-theory
    neural`` does), unless the file's ``[options]`` set ``threads``.
    """
    options = dict(spec.options)
    if "threads" in spec.experiment.options and "threads" not in options:
        try:
            cpus = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - no affinity call on macOS and Windows
            cpus = os.cpu_count() or 1
        options["threads"] = max(1, cpus // jobs)
    return options or None


def _set_sweep(args: argparse.Namespace, seeds: tuple[int, ...] | None) -> tuple | str:
    """``--only NAME --set FIELD=V1,V2 ...``: (jobs, out, what), or the error to print.

    The overrides become a sweep file's grid and are validated by the sweep files' own
    :func:`~lowrank_theory.simulations.sweepfile.parse_sweep`; the seeds are ``--seed(s)`` or the
    size's.
    """
    from lowrank_theory.simulations.experiments import EXPERIMENTS
    from lowrank_theory.simulations.sweepfile import SweepFileError, parse_overrides, parse_sweep

    (name,) = args.only
    try:
        data = {"experiment": name, "grid": parse_overrides(args.overrides),
                "seeds": list(seeds or EXPERIMENTS[name].sweep(args.size).seeds)}
        spec = parse_sweep(data, source="--set", force=args.force)
    except SweepFileError as exc:
        return str(exc)
    out = args.out if args.out is not None else DEFAULT_OUT
    what = (f"--only {name} {' '.join('--set ' + item for item in args.overrides)}: "
            f"{len(spec.sweep.configs)} configs")
    return [(spec.experiment, spec.sweep, None)], out, what
