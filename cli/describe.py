"""``lowrank-theory describe [EXPERIMENT] [--json] [--docs DIR]``: what a sweep may set.

Every field is read from the experiment's config class (its meaning and allowed values live
beside the field, :func:`lowrank_theory.simulations.fields.param`), so this listing, the
validation of sweep files and ``--set``, and ``docs/sweeps.md`` never disagree.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["DOCS", "add_parser", "generated_docs", "write_docs", "describe_command"]

#: The generated documents, by file name.
DOCS = ("sweeps.md", "figures.md")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``describe`` subcommand to ``subparsers`` and return its parser."""
    parser = subparsers.add_parser(
        "describe",
        help="list the fields a sweep of an experiment may set (type, default, range, meaning)",
        description="List every field a sweep file or --set may set for EXPERIMENT: its type, "
                    "default, allowed values and meaning, read from the config class. Without "
                    "EXPERIMENT, list the experiments.",
    )
    parser.add_argument("experiment", nargs="?", metavar="EXPERIMENT",
                        help="vary, phase, rate, landscape, schemes, atlas, shallow, vision "
                             "or language")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--docs", type=Path, metavar="DIR", default=None,
                        help=f"write the generated documents ({', '.join(DOCS)}) into DIR "
                             "(make docs)")
    parser.set_defaults(func=describe_command)
    return parser


def generated_docs() -> dict[str, str]:
    """The text of each generated document, by file name."""
    from lowrank_theory.figures.make import figures_markdown
    from lowrank_theory.simulations.describe import sweeps_markdown

    return {"sweeps.md": sweeps_markdown() + "\n", "figures.md": figures_markdown() + "\n"}


def write_docs(directory: Path) -> list[Path]:
    """Write :data:`DOCS` into ``directory``; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in generated_docs().items():
        path = directory / name
        path.write_text(text, "utf-8")
        paths.append(path)
    return paths


def describe_command(args: argparse.Namespace) -> int:
    """Handler of ``describe``; return the exit code (2: an unknown experiment)."""
    from lowrank_theory.simulations.describe import describe, describe_text, sweepable

    if args.docs is not None:
        try:
            paths = write_docs(args.docs)
        except OSError as exc:
            print(f"error: --docs: {exc.strerror or exc}: {exc.filename or args.docs}",
                  file=sys.stderr)
            return 2
        for path in paths:
            print(f"wrote {path}")
        return 0
    known = sweepable()
    if args.experiment is None:
        if args.json:
            print(json.dumps({name: entry["summary"] for name, entry in known.items()},
                             indent=2))
            return 0
        width = max(map(len, known))
        for name, entry in known.items():
            print(f"{name:<{width}}  {entry['summary']}")
        print("\nlowrank-theory describe EXPERIMENT lists its fields.")
        return 0
    if args.experiment not in known:
        print(f"error: EXPERIMENT must be one of {', '.join(known)}; got {args.experiment!r}",
              file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(describe(args.experiment), indent=2))
    else:
        print(describe_text(args.experiment))
    return 0
