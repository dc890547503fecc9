"""``lowrank-theory check``: run the claims as checks; a text table grouped by kind, or JSON.

Progress lines go to stderr; stdout holds only the table (or the JSON), so
``lowrank-theory check --json > checks.json`` gives a clean file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from lowrank_theory.cli._args import add_names_option, int_at_least
from lowrank_theory.simulations.configs import MAX_SEED

from lowrank_theory.theorems import CHECKS, CheckResult, run_checks, run_controls
from lowrank_theory.theorems.report import check_record, format_table, symbols_in

__all__ = ["add_parser"]


@contextlib.contextmanager
def _single_threaded_blas():
    """Limit BLAS to one thread while the checks run, if threadpoolctl is available.

    The checks make many tiny BLAS calls (d <= 20) inside L-BFGS loops; on this project's
    2-core machines OpenBLAS's thread start-up and spinning make those calls 20-100 times
    slower than single-threaded ones (measured with scipy's L-BFGS-B on 15 parameters).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional speed-up
        yield
        return
    with threadpool_limits(1):
        yield


def _progress(res: CheckResult, seconds: float) -> None:
    print(f"  [{seconds:5.1f}s] {res.name}: {'holds' if res.holds else 'FAILS'}", file=sys.stderr,
          flush=True)


def _handle(args: argparse.Namespace) -> int:
    if args.html is not None and not args.html.parent.is_dir():
        print(f"error: --html: folder {args.html.parent} does not exist", file=sys.stderr)
        return 2
    with _single_threaded_blas():
        if args.controls:
            results = run_controls(seed=args.seed, only=args.only, progress=_progress)
        else:
            results = run_checks(seed=args.seed, only=args.only, thorough=args.thorough,
                                 progress=_progress)
    if args.controls:
        # Every control must fail; one that holds is a check that could not fail.
        bad = [r for r in results if r.holds]
        if args.json:
            print(json.dumps([check_record(r) for r in results], indent=2))
        else:
            for r in results:
                print(f"{r.name}: control {'FAILED as it must' if not r.holds else 'HELD (bad)'}"
                      f" -- {CHECKS[r.name].control_note}; {r.detail}")
            print(f"\nseed {args.seed}: {len(results) - len(bad)}/{len(results)} controls fail "
                  "as they must" + (f"; HELD: {', '.join(r.name for r in bad)}" if bad else ""))
        return 1 if bad else 0
    failed = [r for r in results if r.proven and not r.holds]
    if args.html is not None:
        _write_html(args, results)
    if args.json:
        print(json.dumps([check_record(r) for r in results], indent=2))
        return 1 if failed else 0
    print(format_table(results))
    print()
    for r in results:
        print(f"{r.name}: {r.detail}")
    used = symbols_in(" ".join(f"{r.claim} {r.detail}" for r in results))
    print("\nsymbols: " + "; ".join(f"{sym} = {meaning}" for sym, meaning in used.items()))
    print()
    proven = [r for r in results if r.proven]
    info = [r for r in results if not r.proven]
    line = f"seed {args.seed}: {len(proven) - len(failed)}/{len(proven)} theorem and consistency checks hold"
    if failed:
        line += f"; FAILED: {', '.join(r.name for r in failed)}"
    if info:
        off = [r.name for r in info if not r.holds]
        line += (f"; {len(info) - len(off)}/{len(info)} info checks came out as described"
                 + (f" (not: {', '.join(off)})" if off else "") + " -- info never fails the run")
    print(line)
    return 1 if failed else 0


def _write_html(args: argparse.Namespace, results: list[CheckResult]) -> None:
    """The check table as one self-contained HTML page (the writer of ``reproduce``'s report)."""
    import shlex

    from lowrank_theory.figures.html import write_records

    columns = ["name", "kind", "claim", "reference", "section", "holds", "margin", "instances",
               "predicted", "measured", "tolerance", "detail", "negative_control"]
    command = shlex.join(["lowrank-theory", *getattr(args, "argv", sys.argv[1:])])
    write_records(args.html, f"lowrank-theory check, seed {args.seed}",
                  [check_record(r) for r in results], command=command, columns=columns)
    print(f"wrote {args.html}", file=sys.stderr)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``lowrank-theory check``."""
    parser = subparsers.add_parser(
        "check",
        help="run every claim of the paper as a check on fresh instances",
        description="Run each claim of the theory (docs/theory.md) on fresh random instances "
        "and print a table grouped by kind; exit status 1 if a theorem or consistency check "
        "fails (info checks never fail the run). Progress goes to stderr.",
    )
    parser.add_argument("--json", action="store_true",
                        help="print machine-readable records (with instance settings, solver, "
                        "the meaning of predicted and measured, and the symbols used)")
    parser.add_argument("--seed", type=int_at_least(0, "--seed", MAX_SEED), default=0,
                        help="base seed of the instances, an integer in 0..2**63-1 (default 0)")
    add_names_option(parser, "--only", list(CHECKS), help="run only these checks")
    parser.add_argument("--thorough", action="store_true", help="five times as many instances")
    parser.add_argument("--controls", action="store_true",
                        help="run each check's negative control instead; each must fail "
                        "(exit status 1 if one holds)")
    parser.add_argument("--html", type=Path, metavar="FILE", default=None,
                        help="also write the check table as a self-contained HTML page")
    parser.set_defaults(func=_handle)
    return parser
