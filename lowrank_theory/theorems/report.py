"""Reports of the checks: the glossary of symbols, JSON records, the table grouped by kind, the list.

The ``lowrank-theory check`` subcommand (:mod:`lowrank_theory.cli.check`) prints them.

Examples
--------
>>> print(format_list(["sr-rank"]))
sr-rank  theorem  rank(A_SR - A*) = min(kT, d)
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .registry import CHECKS
from .result import KINDS, CheckResult

__all__ = ["GLOSSARY", "symbols_in", "check_record", "format_table", "format_list"]

#: Every symbol the checks' claims and detail texts use, with its meaning (docs/theory.md,
#: section 2). A test runs every check and fails on a symbol-like token missing here.
GLOSSARY = {
    "d": "input and output dimension",
    "k": "rank of the true offsets U*_t U*_t^T (and of the adapters unless r is given)",
    "r": "rank of the adapters",
    "T": "number of retraining tasks",
    "kT": "k times T, the number of offset columns of [U*_1 ... U*_T]",
    "N": "samples per retraining task",
    "n": "samples of the new task used for fine-tuning",
    "sigma": "noise standard deviation",
    "Sigma": "input covariance (one shared by the tasks, or one per task); Sigma^(1/2) its "
             "symmetric square root",
    "I": "the identity matrix (Sigma = I: the paper's inputs)",
    "N(m, v)": "normal distribution with mean m and variance v",
    "A": "a base (the weights shared by the tasks)",
    "A*": "true base",
    "A^": "base of a LoRA-ML minimum (fitted or constructed)",
    "A_i": "the base of the i-th minimum found",
    "A_j": "the base of the j-th minimum found",
    "A_SR": "standard-retraining base (population unless a sample is named)",
    "A_SR^": "standard-retraining base fitted on N samples per task",
    "A_relax": "base of the convex trace relaxation",
    "A_LoRA-ML": "base fitted by fit_lora_ml",
    "A_exact": "base fitted by the exact solver on a sample",
    "A_paper": "base fitted by the paper's protocol on the same sample",
    "A0": "starting base of a run",
    "U": "the adapter factors (U_t)_t of all tasks",
    "U_t": "adapter factor of task t, shape (d, r)",
    "U0": "starting adapter factors of a run",
    "U*_t": "true offset factor of task t, shape (d, k)",
    "U^_t": "adapter factor of task t at a LoRA-ML minimum",
    "V_t": "second adapter factor of task t in an asymmetric adapter U_t V_t^T, shape (d, r)",
    "S": "k x k boost parameter of the T = 2 family of minima; A(S) is its member base, "
         "asinh of the singular values of S (sv(S)) its rapidities",
    "Q_t": "an orthogonal (r, r) matrix acting on task t's factor",
    "M_t": "true offset U*_t U*_t^T of task t",
    "mean M": "(1/T) sum_t M_t, the mean true offset",
    "D_t": "per-task PSD update of the trace relaxation",
    "P": "a PSD matrix",
    "W*_1": "parameter A* + U*_1 U*_1^T of the single task (T = 1)",
    "W*_new": "parameter A* + U*_new U*_new^T of the new task",
    "F": "LoRA-ML objective: excess loss sum_t |(A + U_t U_t^T - W*_t) Sigma^(1/2)|_F^2",
    "F_LoRA-ML": "F at the LoRA-ML fit",
    "bound": "optimal value of the convex trace relaxation, a lower bound on F",
    "H": "Hessian of F in (A, U)",
    "PD": "positive definite",
    "PSD": "positive semi-definite",
    "lambda_min": "smallest eigenvalue",
    "lambda_max": "largest eigenvalue",
    "s_min": "smallest non-zero singular value (s_min(j): the j-th largest, the smallest of "
             "the j expected to be non-zero)",
    "s_max": "largest singular value",
    "s_(2k+1)": "(2k+1)-th largest singular value",
    "s": "rapidity of the hyperbolic rotation",
    "sum_t": "sum over the tasks t = 1..T",
    "max_t": "maximum over the tasks t = 1..T",
    "|.|_F": "Frobenius norm",
    "|H|": "spectral norm of H (largest absolute eigenvalue)",
    "scale": "|A*|_F + sum_t |U*_t U*_t^T|_F, at least 1",
    "gradient scale": "|(G_t(0))_t|_F, the stacked per-task loss gradients at W = 0, at least 1",
    "Sxx_t": "input second moment of task t (Sigma, or X_t^T X_t / N)",
    "floor": "sum of squared singular values of (W*_new - A_SR) Sigma^(1/2) beyond the k largest",
    "spectral tail": "sum of squared singular values beyond a given rank",
    "tail_k": "sum of the squared singular values beyond the k largest (in the Sigma^(1/2)-"
              "weighted norm when a covariance is given): what no rank-k adapter can reach",
    "excess*(n-d-1)/(sigma^2 k(2d-k))": "mean excess loss times (n - d - 1), over "
                                        "sigma^2 k (2d - k): the rate's constant, normalised",
    "slope": "least-squares slope of log(error) against log(variable)",
    "95% interval": "slope +- t(0.975, m - 2) x its standard error, m points",
    "h": "step length of the Taylor-remainder test",
    "O(.)": "of the order of, as h -> 0",
    "L-BFGS": "limited-memory BFGS, a quasi-Newton minimiser",
}

#: Symbols written otherwise than as their key: ``N(0, 1)`` is a distribution, ``O(h^3)`` an
#: order; a plain ``N`` (samples) followed by ``(`` is therefore never ``N``.
_WRITTEN = {"N(m, v)": r"N\(", "O(.)": r"O\(", "N": r"N(?!\()"}
#: A symbol may be followed by a power or a transpose (``sigma^2``, ``U*_t^T``, ``N^(-1/2)``)
#: but not by more of a longer symbol (``A_SR`` in ``A_SR^``, ``A`` in ``A*`` or ``A0``).
_AFTER = r"(?![A-Za-z0-9_*]|\^(?![0-9T(]))"
#: Nor may it be preceded by one (``s`` in ``paper's``, ``F`` in ``|.|_F``).
_BEFORE = r"(?<![A-Za-z0-9_*^'])"
_SYMBOL_RE = {
    sym: re.compile(_BEFORE + _WRITTEN.get(sym, re.escape(sym))
                    + ("" if sym in ("N(m, v)", "O(.)") else _AFTER))
    for sym in GLOSSARY
}


def symbols_in(text: str) -> dict[str, str]:
    """The glossary entries whose symbol occurs in ``text`` (as a token)."""
    return {sym: GLOSSARY[sym] for sym, pattern in _SYMBOL_RE.items() if pattern.search(text)}


def check_record(result: CheckResult) -> dict:
    """The JSON record of one result: the result, its registry entry, the symbols it uses."""
    record = CHECKS.get(result.name)
    out = result.to_dict()
    if record is not None:
        out.update({
            "section": f"docs/theory.md, section {record.section}",
            "statement": record.statement,
            "python": f"lowrank_theory.theorems.{record.handle}",
            "instance_settings": record.settings.to_dict(),
            "covariance": record.covariance,
            "solver": record.solver,
            "predicted_means": record.predicted,
            "measured_means": record.measured,
            "negative_control": record.control_note,
        })
    out["symbols"] = symbols_in(f"{result.claim} {result.detail}")
    return out


def format_table(results: Sequence[CheckResult]) -> str:
    """A plain-text table, one block per kind: claim, reference, section, instances, holds, margin."""
    header = ("check", "claim", "reference", "section", "inst.", "holds", "margin")
    rows: list[tuple[str, ...]] = []
    for kind in KINDS:
        block = [r for r in results if r.kind == kind]
        if not block:
            continue
        rows.append((f"[{kind}]",) + ("",) * (len(header) - 1))
        for r in block:
            record = CHECKS.get(r.name)
            rows.append((r.name, record.statement if record else r.claim, r.reference,
                         record.section if record else "", str(r.instances),
                         "yes" if r.holds else "NO", f"{r.margin:+.1f}"))
    return _columns([header, None, *rows])


def _columns(rows: Sequence[Sequence[str] | None]) -> str:
    """Rows as left-aligned columns; a None row is a rule under the header."""
    real = [row for row in rows if row is not None]
    widths = [max(len(row[i]) for row in real) for i in range(len(real[0]))]

    def line(row: Sequence[str] | None) -> str:
        cells = ["-" * w for w in widths] if row is None else row
        return "  ".join(cell.ljust(w) for cell, w in zip(cells, widths)).rstrip()

    return "\n".join(map(line, rows))


def format_list(names: Sequence[str] | None = None) -> str:
    """One line per check: name, kind and its one-line statement (``check --list``)."""
    return _columns([(n, CHECKS[n].kind, CHECKS[n].statement) for n in (names or list(CHECKS))])
