r"""The ``lowrank-theory neural`` subcommand (torch is imported only when it runs).

The experiments run on the project's sweep runner (:mod:`lowrank_theory.simulations.runner`): each unit of
work (one config with its seeds) is written atomically under ``OUT/<experiment>/runs``, a killed
run resumes where it stopped, and the combined table ``OUT/<experiment>.csv`` carries the
provenance columns.

Examples
--------
::

    lowrank-theory neural --experiment shallow --size cpu
    lowrank-theory neural --only shallow,vision --size cpu
    lowrank-theory neural --experiment shallow --size paper --device cuda
    lowrank-theory neural --experiment vision --size paper --device cuda --data-dir ~/data
    lowrank-theory neural --experiment language --size paper --data-dir ~/convai2 \\
        --model-dir ~/models/roberta-base --device cuda
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

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
from lowrank_theory.simulations.executors import EXECUTORS
from lowrank_theory.simulations.neural.configs import PRESETS, SWEEPS

__all__ = [
    "add_parser",
    "run_neural",
]

#: Column reported in the closing summary of each experiment, its label and the grouping.
_SUMMARY = {
    "shallow": ("fit_error", "fit error", ("d", "T", "method", "ft_rank")),
    "vision": ("test_accuracy", "test accuracy", ("method", "finetune")),
    "language": ("test_accuracy", "hits@1", ("method", "finetune")),
}


#: Largest ``--steps-scale``: a thousand times the paper's step budgets is already weeks of
#: training, and far larger factors overflow the step counts.
MAX_STEPS_SCALE = 1000.0


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--steps-scale must be a number, got "
                                         f"{text[:60]!r}") from None
    if not 0 < value <= MAX_STEPS_SCALE:
        raise argparse.ArgumentTypeError(f"--steps-scale must be a number in (0, "
                                         f"{MAX_STEPS_SCALE:g}], got {text[:60]}")
    return value


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``neural`` subcommand to ``subparsers`` and return its parser."""
    parser = subparsers.add_parser(
        "neural",
        help="LoRA-ML vs SR / Reptile / last-layer ML on neural networks (needs the torch extra)",
        description="Retrain on T tasks with each method, fine-tune a fresh adapter or head on "
                    "an unseen task, and write a tidy table OUT/neural_<experiment>.csv "
                    "(resumable: finished units are kept).",
    )
    parser.add_argument("--experiment", choices=list(SWEEPS), default=None,
                        help="one experiment: shallow network, vision (digits / CIFAR-10) or "
                             "language (ConvAI2); the same as --only NAME")
    add_names_option(parser, "--only", list(SWEEPS),
                     help="run only these experiments of the preset (default: all three)")
    parser.add_argument("--size", choices=PRESETS, default="cpu",
                        help="cpu: minutes on two cores (default); paper: the authors' setting")
    parser.add_argument("--steps-scale", type=_positive_float, default=1.0, metavar="X",
                        help="multiply every step budget by X (recorded in the table)")
    add_seed_options(parser, default="the size's number of seeds")
    parser.add_argument("--out", type=out_folder(), default=None, metavar="DIR",
                        help="output folder (default: results/neural/<size>)")
    parser.add_argument("--device", default="cpu",
                        help="torch device: cpu (default), cuda, cuda:1, mps")
    parser.add_argument("--data-dir", metavar="PATH", default=None,
                        help="local CIFAR-10 folder (holding cifar-10-batches-py) or ConvAI2 "
                             "folder (holding ParlAI's train_self_original.txt)")
    parser.add_argument("--model-dir", metavar="PATH", default=None,
                        help="local roberta-base folder (config, weights, tokenizer files)")
    parser.add_argument("--jobs", type=int_at_least(1, "--jobs"), default=None, metavar="N",
                        help="worker processes (default: on CPU one per CPU, at most one per "
                             "unit of work; on a GPU 1)")
    parser.add_argument("--threads", type=int_at_least(1, "--threads"), default=None,
                        help="torch CPU threads per worker (default: CPUs / jobs)")
    parser.add_argument("--executor", choices=EXECUTORS, default="local",
                        help="local processes (default) or a dask.distributed cluster")
    parser.add_argument("--scheduler", metavar="ADDRESS", default=None, type=scheduler_address,
                        help="dask scheduler address, tcp://host:port (with --executor dask)")
    parser.add_argument("--no-graph", dest="graph", action="store_false",
                        help="on CUDA, run every step eagerly instead of replaying CUDA graphs")
    parser.add_argument("--progress", action="store_true",
                        help="show progress bars (default: when stderr is a terminal)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (the run's counts and table, the summary "
                             "rows) instead of text")
    add_force_option(parser)
    parser.set_defaults(func=run_neural)
    return parser


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)  # as reproduce words its usage errors
    return 2


def _check_writable(out: Path) -> str | None:
    # Found before any compute: a bad --out must not surface after an hour of training.
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        return f"cannot write to --out {out} ({exc.strerror or exc}); choose another folder"
    return None


def run_neural(args: argparse.Namespace) -> int:
    """Run the selected experiments of the preset, one after the other; return the exit code.

    ``--only`` (or ``--experiment``) restricts the preset to some experiments; without either,
    all three run, in the order shallow, vision, language. The data each one reads is checked
    before the first starts. With ``--json`` and several experiments, stdout holds one object
    whose ``runs`` are the experiments' objects.
    """
    if args.experiment is not None and args.only:
        return _error("--experiment and --only both name experiments: give one of them")
    names = args.only or ([args.experiment] if args.experiment else list(SWEEPS))
    if len(names) > 1:
        try:
            from lowrank_theory.simulations.neural.configs import preset_sweep
            from lowrank_theory.simulations.neural.experiments import check_inputs

            from lowrank_theory.neural.data import DataFormatError, DataMissingError
        except ImportError:
            pass  # _run_one says torch is missing
        else:
            try:
                for name in names:
                    check_inputs(preset_sweep(name, args.size, args.steps_scale).configs[0],
                                 args.data_dir, args.model_dir)
            except (DataMissingError, DataFormatError) as exc:
                return _error(str(exc))
    records = []
    for name in names:
        one = argparse.Namespace(**{**vars(args), "experiment": name})
        if not (args.json and len(names) > 1):
            code = _run_one(one)
        else:  # collect each experiment's JSON object into one
            import contextlib
            import io
            import json

            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer):
                code = _run_one(one)
            if code == 0:
                records.append(json.loads(buffer.getvalue()))
        if code:
            return code
    if records:
        import json

        print(json.dumps({"runs": records}, indent=2))
    return 0


def _run_one(args: argparse.Namespace) -> int:
    """Run the experiment's sweep on the runner, print the summary; return the exit code."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return _error("the neural experiments need torch, which is not installed; install the "
                      "extra with\n    pip install 'lowrank-theory[torch]'   (or make install-torch "
                      "in a clone)")
    if args.scheduler is not None and args.executor != "dask":
        return _error("--scheduler needs --executor dask")

    from lowrank_theory.simulations.budget import SweepTooLarge, check_run_count
    from lowrank_theory.simulations.executors import SchedulerUnreachable, probe_scheduler
    from lowrank_theory.simulations.neural.configs import preset_sweep
    from lowrank_theory.simulations.neural.experiments import EXPERIMENTS as REGISTRY
    from lowrank_theory.simulations.neural.experiments import check_inputs
    from lowrank_theory.simulations.outdir import OutputDirError, OutputLocked
    from lowrank_theory.simulations.runner import make_executor, run_experiment, units_of
    from lowrank_theory.simulations.store import InvalidRunFile

    from lowrank_theory.neural.data import DataFormatError, DataMissingError
    from lowrank_theory.neural.finetune import summarise
    from lowrank_theory.neural.runtime import available_cpus, check_device

    try:
        device = check_device(args.device)
    except ValueError as exc:
        return _error(f"bad --device {args.device[:60]!r}: {exc}")
    experiment = REGISTRY[args.experiment]
    if args.seeds is not None:  # counted before 0..N-1 are listed
        n_configs = len(preset_sweep(args.experiment, args.size, args.steps_scale, (0,)).configs)
        try:
            check_run_count(n_configs, args.seeds, force=args.force,
                            what=f"--experiment {args.experiment} --size {args.size}")
        except SweepTooLarge as exc:
            return _error(f"--seeds: {exc}")
    seeds = selected_seeds(args)
    sweep = preset_sweep(args.experiment, args.size, args.steps_scale, seeds)
    out = args.out if args.out is not None else Path("results/neural") / args.size
    try:  # the inputs and the scheduler before --out is touched
        check_inputs(sweep.configs[0], args.data_dir, args.model_dir)
        if args.scheduler is not None:
            probe_scheduler(args.scheduler)
    except (DataMissingError, DataFormatError) as exc:
        return _error(str(exc))
    except SchedulerUnreachable as exc:
        return _error(f"--scheduler: {exc}")
    except ImportError as exc:
        return _error(f"--executor {args.executor}: {exc}")
    problem = _check_writable(out)
    if problem:
        return _error(problem)

    n_units = len(units_of(sweep, experiment.seeds_per_unit))
    cpus = available_cpus()
    jobs = args.jobs or (min(cpus, n_units) if device.type == "cpu" else 1)
    threads = args.threads or max(1, cpus // jobs)
    options = {"device": str(device), "threads": threads,
               "progress": args.progress or (sys.stderr.isatty() and jobs == 1)}
    if "graph" in experiment.options:
        options["graph"] = args.graph
    if "data_dir" in experiment.options:
        options["data_dir"] = args.data_dir
    if "model_dir" in experiment.options:
        options["model_dir"] = args.model_dir
    print(f"neural {args.experiment} ({args.size}, steps x{args.steps_scale:g}): "
          f"{len(sweep.configs)} config(s), seeds {list(sweep.seeds)}, device {device}, "
          f"{jobs} job(s) x {threads} thread(s) -> {out}", file=sys.stderr, flush=True)
    try:
        with make_executor(args.executor, jobs, args.scheduler) as executor:
            result = run_experiment(experiment, out, sweep=sweep, executor=executor,
                                    progress=args.progress or None, options=options)
    except (DataMissingError, DataFormatError) as exc:
        return _error(str(exc))
    except (OutputDirError, OutputLocked) as exc:
        return _error(f"--out: {exc}")
    except SchedulerUnreachable as exc:
        return _error(f"--scheduler: {exc}")
    except ImportError as exc:
        return _error(f"--executor {args.executor}: {exc}")
    except InvalidRunFile as exc:
        return _error(f"{exc}; rerun to recompute it")
    except OSError as exc:
        return _error(output_error(exc))
    import pandas as pd

    table = pd.read_csv(result.tables[0])
    value, label, by = _SUMMARY[args.experiment]
    summary = summarise(table, value, by=by)
    if args.json:
        import json

        rows = summary.rename(columns={"mean": value, "se": f"{value}_se"})
        print(json.dumps({"experiment": args.experiment, "size": args.size, "out": str(out),
                          "run": result.to_dict(),
                          "summary": json.loads(rows.to_json(orient="records"))}, indent=2))
        return 0
    summary["result"] = [
        f"{m:.4g} +- {s:.2g}" if s == s else f"{m:.4g}"
        for m, s in zip(summary["mean"], summary["se"], strict=True)
    ]
    shown = summary.drop(columns=["mean", "se"]).rename(columns={"result": f"{label} (+- s.e.)"})
    print(shown.to_string(index=False))
    print(result.summary())
    return 0

