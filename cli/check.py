"""``lowrank-theory check``: run the claims as checks; a text table grouped by kind, or JSON.

Progress lines go to stderr; stdout holds only the table (or the JSON), so
``lowrank-theory check --json > checks.json`` gives a clean file. Modes: the checks on fresh
instances (default), ``--controls`` (each check's near miss, which must fail), ``--family FILE``
(the checks that apply to a saved family, and why the others are skipped), ``--seeds N``
(seeds 0..N-1, ``--jobs`` at a time) and ``--list``. ``--html FILE`` also writes the table of the
default mode or of ``--family`` as one self-contained HTML page.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from lowrank_theory.cli._args import add_names_option, int_at_least
from lowrank_theory.simulations.configs import MAX_SEED

from lowrank_theory.tasks import TaskFamily
from lowrank_theory.theorems import CHECKS, CheckResult, run_checks, run_controls, run_on_family
from lowrank_theory.theorems.report import check_record, format_list, format_table, symbols_in

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


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)  # as the other subcommands word usage errors
    return 2


def _summary(results: list[CheckResult], label: str) -> tuple[str, list[CheckResult]]:
    failed = [r for r in results if r.proven and not r.holds]
    proven = [r for r in results if r.proven]
    info = [r for r in results if not r.proven]
    line = f"{label}: {len(proven) - len(failed)}/{len(proven)} theorem and consistency checks hold"
    if failed:
        line += f"; FAILED: {', '.join(r.name for r in failed)}"
    if info:
        off = [r.name for r in info if not r.holds]
        line += (f"; {len(info) - len(off)}/{len(info)} info checks came out as described"
                 + (f" (not: {', '.join(off)})" if off else "") + " -- info never fails the run")
    return line, failed


def _report(results: list[CheckResult]) -> None:
    print(format_table(results))
    print()
    for r in results:
        print(f"{r.name}: {r.detail}")
    used = symbols_in(" ".join(f"{r.claim} {r.detail}" for r in results))
    print("\nsymbols: " + "; ".join(f"{sym} = {meaning}" for sym, meaning in used.items()))
    print()


def _controls(args: argparse.Namespace) -> int:
    with _single_threaded_blas():
        results = run_controls(seed=args.seed, only=args.only, progress=_progress)
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


def _family(args: argparse.Namespace) -> int:
    try:
        family = TaskFamily.load(args.family)
    except (OSError, ValueError) as exc:
        return _error(f"--family {args.family}: {exc}")
    with _single_threaded_blas():
        results, skipped = run_on_family(family, seed=args.seed, only=args.only,
                                         progress=_progress)
    label = f"{args.family} (d={family.d}, k={family.k}, T={family.T}), seed {args.seed}"
    line, failed = _summary(results, label)
    if args.html is not None:
        _write_html(args, results, f"lowrank-theory check --family {args.family}, seed {args.seed}")
    if args.json:
        records = [check_record(r) for r in results]
        records += [{"name": s.name, "kind": s.kind, "skipped": s.reason} for s in skipped]
        print(json.dumps(records, indent=2))
        return 1 if failed else 0
    if results:
        _report(results)
    for s in skipped:
        print(f"skipped {s.name}: {s.reason}")
    print(f"\n{line}; {len(skipped)} checks skipped")
    return 1 if failed else 0


def _one_seed(seed: int, only: list[str] | None, thorough: bool) -> list[CheckResult]:
    with _single_threaded_blas():
        return run_checks(seed=seed, only=only, thorough=thorough)


def _seeds(args: argparse.Namespace) -> int:
    seeds = range(args.seeds)
    bad_seeds = []
    with contextlib.ExitStack() as stack:
        if args.jobs > 1:
            pool = stack.enter_context(ProcessPoolExecutor(max_workers=args.jobs))
            runs = pool.map(_one_seed, seeds, [args.only] * len(seeds),
                            [args.thorough] * len(seeds))
        else:
            runs = (_one_seed(seed, args.only, args.thorough) for seed in seeds)
        for seed, results in zip(seeds, runs):
            line, failed = _summary(results, f"seed {seed}")
            print(line, flush=True)
            if failed:
                bad_seeds.append(seed)
    print(f"\nseeds 0-{args.seeds - 1}: every theorem and consistency check held on "
          f"{args.seeds - len(bad_seeds)}/{args.seeds} seeds"
          + (f"; failures on seeds {bad_seeds}" if bad_seeds else ""))
    return 1 if bad_seeds else 0


def _handle(args: argparse.Namespace) -> int:
    modes = [flag for flag, on in (("--list", args.list), ("--controls", args.controls),
                                   ("--family", args.family is not None),
                                   ("--seeds", args.seeds is not None)) if on]
    if len(modes) > 1:
        return _error(f"{' and '.join(modes)} cannot be combined; give one of them.")
    if args.html is not None:
        if modes and modes != ["--family"]:
            return _error(f"--html writes the table of the checks (alone or with --family), "
                          f"not of {modes[0]}")
        if not args.html.parent.is_dir():
            return _error(f"--html: folder {args.html.parent} does not exist")
    if args.list:
        print(format_list(args.only))
        return 0
    if args.controls:
        return _controls(args)
    if args.family is not None:
        return _family(args)
    if args.seeds is not None:
        return _seeds(args)
    with _single_threaded_blas():
        results = run_checks(seed=args.seed, only=args.only, thorough=args.thorough,
                             progress=_progress)
    line, failed = _summary(results, f"seed {args.seed}")
    if args.html is not None:
        _write_html(args, results, f"lowrank-theory check, seed {args.seed}")
    if args.json:
        print(json.dumps([check_record(r) for r in results], indent=2))
    else:
        _report(results)
        print(line)
    return 1 if failed else 0


def _write_html(args: argparse.Namespace, results: list[CheckResult], title: str) -> None:
    """The check table as one self-contained HTML page (the writer of ``reproduce``'s report)."""
    import shlex

    from lowrank_theory.figures.html import write_records

    columns = ["name", "kind", "claim", "reference", "section", "holds", "margin", "instances",
               "predicted", "measured", "tolerance", "detail", "negative_control"]
    command = shlex.join(["lowrank-theory", *getattr(args, "argv", sys.argv[1:])])
    write_records(args.html, title, [check_record(r) for r in results], command=command,
                  columns=columns)
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
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int_at_least(0, "--seed", MAX_SEED), default=0, metavar="S",
                       help="base seed of the instances, an integer in 0..2**63-1 (default 0)")
    seeds.add_argument("--seeds", type=int_at_least(1, "--seeds"), metavar="N",
                       help="run every check on seeds 0..N-1, one summary line per seed "
                       "(exit status 1 if one fails on any seed)")
    add_names_option(parser, "--only", list(CHECKS), help="run only these checks")
    parser.add_argument("--thorough", action="store_true", help="five times as many instances")
    parser.add_argument("--controls", action="store_true",
                        help="run each check's negative control (a near miss) instead; each "
                        "must fail (exit status 1 if one holds)")
    parser.add_argument("--list", action="store_true",
                        help="list the checks: name, kind and one-line statement")
    parser.add_argument("--family", type=Path, metavar="FILE",
                        help="run the checks that apply to the family saved in FILE "
                        "(TaskFamily.save, .npz) and say why each other one is skipped")
    parser.add_argument("--jobs", type=int_at_least(1, "--jobs"), default=1, metavar="N",
                        help="processes for --seeds (default 1)")
    parser.add_argument("--html", type=Path, metavar="FILE", default=None,
                        help="also write the check table as a self-contained HTML page")
    parser.set_defaults(func=_handle)
    return parser
