r"""The ``lowrank-theory neural`` subcommand (torch is imported only when it runs).

Examples
--------
::

    lowrank-theory neural --experiment shallow --size cpu
    lowrank-theory neural --experiment vision --size paper --device cuda --data-dir ~/data
    lowrank-theory neural --experiment language --size paper --data-dir ~/convai2 \\
        --model-dir ~/models/roberta-base --device cuda
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lowrank_theory._validation import int_at_least

EXPERIMENTS = ("shallow", "vision", "language")
SIZES = ("cpu", "paper")

#: Column reported in the closing summary of each experiment, and its label.
_SUMMARY_VALUES = {
    "shallow": ("test_loss", "test MSE"),
    "vision": ("test_accuracy", "test accuracy"),
    "language": ("test_accuracy", "hits@1"),
}
_SUMMARY_BY = {
    "shallow": ("sweep", "d", "T", "method", "finetune"),
    "vision": ("method", "finetune"),
    "language": ("method", "finetune"),
}


def _nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text}")
    return value


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``neural`` subcommand to ``subparsers`` and return its parser."""
    parser = subparsers.add_parser(
        "neural",
        help="LoRA-ML vs SR / Reptile / MAML on neural networks (needs the torch extra)",
        description="Retrain on T tasks with each method, fine-tune a fresh adapter or head on "
                    "an unseen task, and write a tidy table OUT/neural_<experiment>_<size>.csv.",
    )
    parser.add_argument("--experiment", required=True, choices=EXPERIMENTS,
                        help="shallow network, vision (digits / CIFAR-10) or language (ConvAI2)")
    parser.add_argument("--size", choices=SIZES, default="cpu",
                        help="cpu: minutes on a laptop (default); paper: the paper's sizes")
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", type=int_at_least(1, "--seeds"), metavar="N",
                       help="run seeds 0..N-1 (default: the size's number of seeds)")
    seeds.add_argument("--seed", type=_nonnegative_int, metavar="S", help="run the one seed S")
    parser.add_argument("--out", type=Path, default=Path("results/neural"),
                        help="output folder (default: results/neural)")
    parser.add_argument("--device", default="cpu",
                        help="torch device: cpu (default), cuda, cuda:1, mps")
    parser.add_argument("--data-dir", metavar="PATH", default=None,
                        help="local CIFAR-10 folder (holding cifar-10-batches-py) or ConvAI2 "
                             "folder (holding ParlAI's train_self_original.txt)")
    parser.add_argument("--model-dir", metavar="PATH", default=None,
                        help="local roberta-base folder (config, weights, tokenizer files)")
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    parser.set_defaults(func=run_neural)
    return parser


def run_neural(args: argparse.Namespace) -> int:
    """Run the experiment, write its table, print the summary; return the exit code."""
    try:
        import torch
    except ImportError:
        print("lowrank-theory neural: torch is not installed; install the extra with\n"
              "    pip install -e .[torch]", file=sys.stderr)
        return 2

    from .data import DataMissingError
    from .experiments import make_config, run_experiment
    from .finetune import summarise

    try:
        device = torch.device(args.device)
    except RuntimeError as exc:
        print(f"lowrank-theory neural: bad --device {args.device!r} ({exc}); "
              "use cpu, cuda, cuda:N or mps", file=sys.stderr)
        return 2
    if device.type == "cuda" and not torch.cuda.is_available():
        print("lowrank-theory neural: --device cuda but torch sees no CUDA GPU "
              f"(torch {torch.__version__}); use --device cpu", file=sys.stderr)
        return 2
    config = make_config(args.experiment, args.size)
    if args.seed is not None:
        seeds = [args.seed]
    else:
        seeds = list(range(args.seeds if args.seeds is not None else config.seeds))
    print(f"neural {args.experiment} ({args.size}), seeds {seeds}, device {device}, "
          f"config {config.config_hash()}", file=sys.stderr)
    try:
        table = run_experiment(
            args.experiment, config, seeds, device=str(device), data_dir=args.data_dir,
            model_dir=args.model_dir, progress=args.progress or sys.stderr.isatty(),
        )
    except DataMissingError as exc:
        print(f"lowrank-theory neural: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"neural_{args.experiment}_{args.size}.csv"
    table.to_csv(path, index=False)
    value, label = _SUMMARY_VALUES[args.experiment]
    summary = summarise(table, value, by=_SUMMARY_BY[args.experiment])
    summary["result"] = [
        f"{m:.4g} +- {s:.2g}" if s == s else f"{m:.4g}"
        for m, s in zip(summary["mean"], summary["se"], strict=True)
    ]
    shown = summary.drop(columns=["mean", "se"]).rename(columns={"result": f"{label} (+- s.e.)"})
    print(shown.to_string(index=False))
    print(f"wrote {path}")
    return 0
