"""The record a check returns, and how the instances of a check aggregate into one record.

A check either *holds* or not on an instance, with a *margin*: decades of headroom
``log10(tolerance / error)``, positive exactly when the claim holds (capped at
:data:`MARGIN_CAP` when the error is exactly zero). Its *kind* says what a failure would mean
(docs/theory.md, section 14):

- ``"theorem"``: a claim of the paper, or one the project proves in docs/theory.md; a failure is
  a counterexample or a bug, and makes ``lowrank-theory check`` exit with status 1;
- ``"consistency"``: an algebraic identity or a property of the problem's set-up (a zero-loss
  point, a closed form, a symmetry); a failure is a bug in the code, and also exits with 1;
- ``"info"``: a measurement or a demonstration outside the statements; it never fails the run,
  and ``holds`` says whether it came out as described.

This module needs nothing but numpy, so that any part of the library can return a
:class:`CheckResult` (the adaptation schemes' checks do) without importing the theorem checks.

Examples
--------
>>> res = make_result("demo", "a claim", "Thm 0", 0.0, 1e-12, 1e-12, 1e-9)
>>> res.holds, round(res.margin, 6)
(True, 3.0)
>>> aggregate([res, make_result("demo", "a claim", "Thm 0", 0.0, 1.0, 1.0, 1e-9)]).holds
False
>>> margin(float("inf"), 1e-9)  # an infinite error (nothing measured) has no headroom
-16.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

from lowrank_theory._repr import summary_repr

__all__ = [
    "CheckResult",
    "NotApplicable",
    "KINDS",
    "MARGIN_CAP",
    "margin",
    "make_result",
    "aggregate",
]

#: What a check's failure means (see the module docstring), in the order the table lists them.
KINDS = ("theorem", "consistency", "info")
#: Largest margin reported (an error of exactly zero has infinite headroom).
MARGIN_CAP = 16.0


class NotApplicable(ValueError):
    """The instance lies outside the claim's assumptions; the message says which one.

    A ``ValueError``, so callers that catch bad input keep working; ``lowrank-theory check
    --family`` prints its message as the reason a check was skipped.
    """


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one claim on one instance (or the worst over several).

    Attributes
    ----------
    name : str
        The check's name (``lowrank-theory check --only NAME``).
    claim : str
        What is claimed, in words.
    reference : str
        Where the paper states it, and the section of docs/theory.md that restates it.
    predicted : float
        The value the claim predicts (its meaning is the registry's ``predicted`` text).
    measured : float
        The value measured (the worst instance's, for an aggregate).
    tolerance : float
        Allowed error.
    holds : bool
        Whether the claim holds on every instance tried.
    margin : float
        Decades of headroom ``log10(tolerance / error)`` (worst instance); positive iff holds.
    instances : int
        Instances tried.
    kind : {"theorem", "consistency", "info"}
        What a failure means.
    detail : str
        Extra numbers a reader needs to interpret the result; its symbols are defined in
        :data:`lowrank_theory.theorems.report.GLOSSARY`.
    """

    name: str
    claim: str
    reference: str
    predicted: float
    measured: float
    tolerance: float
    holds: bool
    margin: float
    instances: int = 1
    kind: str = "theorem"
    detail: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}.")

    def __repr__(self) -> str:
        return summary_repr(type(self).__name__, {
            "name": self.name, "kind": self.kind, "holds": self.holds,
            "margin": round(self.margin, 2), "predicted": self.predicted,
            "measured": self.measured, "tolerance": self.tolerance,
            "instances": self.instances})

    @property
    def proven(self) -> bool:
        """Whether a failure fails the run (a theorem or a consistency check, not info)."""
        return self.kind != "info"

    def to_dict(self) -> dict:
        """A JSON-ready dict (non-finite floats become strings)."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, float) and not math.isfinite(value):
                out[key] = str(value)
        return out


def margin(error: float, tolerance: float) -> float:
    """``log10(tolerance / error)``, capped at ``+-MARGIN_CAP``; negative when ``error > tolerance``."""
    if error <= 0.0:
        return MARGIN_CAP
    if tolerance <= 0.0 or not np.isfinite(error):
        return -MARGIN_CAP
    return float(np.clip(np.log10(tolerance / error), -MARGIN_CAP, MARGIN_CAP))


def make_result(
    name: str, claim: str, reference: str, predicted: float, measured: float, error: float,
    tolerance: float, *, kind: str = "theorem", detail: str = "", holds: bool | None = None,
) -> CheckResult:
    """A :class:`CheckResult` whose margin agrees in sign with ``holds``.

    ``holds`` defaults to ``error <= tolerance``; when given (a claim with several parts) a
    failing result gets a non-positive margin whatever the error.
    """
    ok = bool(error <= tolerance) if holds is None else bool(holds)
    m = margin(error, tolerance)
    if not ok:
        m = min(m, 0.0) if m <= 0 else -m
    elif m < 0:  # holds by another criterion than this error: report no headroom
        m = 0.0
    return CheckResult(name, claim, reference, float(predicted), float(measured),
                       float(tolerance), ok, m, 1, kind, detail)


def aggregate(results: Sequence[CheckResult], detail: str = "") -> CheckResult:
    """All instances must hold; the reported numbers are the worst instance's."""
    if not results:
        raise ValueError("nothing to aggregate: no instance was checked.")
    worst = min(results, key=lambda r: (r.holds, r.margin))
    extra = "; ".join(x for x in (detail, worst.detail) if x)
    return replace(worst, holds=all(r.holds for r in results),
                   instances=int(sum(r.instances for r in results)), detail=extra)
