"""One record per check, and the registry that holds them.

A :class:`Check` is everything about one claim in one place: its name and kind, its statement
and where the paper and docs/theory.md state it, the function that tests it on given inputs,
how it draws its instances, how it runs on a family a user brings, which families it applies
to, and the negative control it must fail. :class:`Registry` is a read-only mapping from names
to records with attribute access.

Names and handles
-----------------
The rule: a check named ``x-y`` is the record ``CHECKS["x-y"]``, also ``CHECKS.x_y``, and its
function (``record.check``, the one that tests the claim on given inputs) is
``lowrank_theory.theorems.check_x_y``: the printed name with ``-`` read as ``_`` and ``check_``
in front. ``tests/test_theorems_registry.py`` holds every record to it.

Examples
--------
>>> from lowrank_theory.theorems import CHECKS
>>> rec = CHECKS["sr-rank"]
>>> rec is CHECKS.sr_rank, rec.kind, rec.check.__name__
(True, 'theorem', 'check_sr_rank')
>>> from lowrank_theory import TaskFamily
>>> rec.run_on(TaskFamily.random(d=5, k=1, T=3, seed=0)).holds
True
>>> CHECKS["t2-hyperbolic"].skip_reason(TaskFamily.random(d=5, k=1, T=3, seed=0))
'needs T = 2'
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from lowrank_theory._validation import as_seed_generator
from lowrank_theory.check_result import KINDS, MARGIN_CAP, CheckResult, NotApplicable, aggregate
from lowrank_theory.tasks import TaskFamily

from .instances import InstanceSettings, draw_family

__all__ = ["Check", "Registry", "handle_name", "always", "identity_only", "requires", "vacuous",
           "aggregate_instances", "every_family"]

#: ``(family, rng, settings) -> CheckResult``: the check on one given instance.
OnFamily = Callable[[TaskFamily, np.random.Generator, InstanceSettings], CheckResult]
#: ``family -> None`` when the check applies, else the reason it does not.
Applies = Callable[[TaskFamily], "str | None"]


def handle_name(name: str) -> str:
    """The Python name of a check's function: ``"recovery-t3"`` -> ``"check_recovery_t3"``.

    Examples
    --------
    >>> handle_name("sr-floor-every-n")
    'check_sr_floor_every_n'
    """
    return "check_" + name.replace("-", "_")


def always(family: TaskFamily) -> str | None:
    """Applies to every family."""
    return None


def requires(*conditions: tuple[Callable[[TaskFamily], bool], str]) -> Applies:
    """An ``applies`` function from ``(predicate, reason)`` pairs: the first reason that fails.

    Examples
    --------
    >>> from lowrank_theory import TaskFamily
    >>> needs_t3 = requires((lambda f: f.T >= 3, "needs T >= 3"))
    >>> needs_t3(TaskFamily.random(d=3, k=1, T=2, seed=0))
    'needs T >= 3'
    """

    def applies(family: TaskFamily) -> str | None:
        for predicate, reason in conditions:
            if not predicate(family):
                return reason
        return None

    return applies


def identity_only(reason: str) -> tuple[Callable[[TaskFamily], bool], str]:
    """The condition "identity input covariance", with why the check needs it."""
    return (lambda f: f.isotropic), f"needs identity covariance ({reason})"


def vacuous(name: str, kind: str, detail: str) -> CheckResult:
    """The result of an instance on which nothing fell under the claim (``instances = 0``).

    A run ignores such results when it aggregates, and fails when every instance was vacuous:
    a check that checked nothing has not held.
    """
    return CheckResult(name, "", "", 0.0, 0.0, 0.0, True, 0.0, 0, kind, detail)


def aggregate_instances(name: str, kind: str, results: Sequence[CheckResult]) -> CheckResult:
    """:func:`~lowrank_theory.check_result.aggregate` over the non-vacuous results; failing if none."""
    real = [r for r in results if r.instances > 0]
    if not real:
        detail = "; ".join(r.detail for r in results) or "no instance"
        return CheckResult(name, "", "", 0.0, 0.0, 0.0, False, -MARGIN_CAP, 0, kind,
                           f"nothing was checked: {detail}")
    skipped = len(results) - len(real)
    return aggregate(real, f"{skipped} instance(s) had nothing to check" if skipped else "")


def every_family(
    generate: Callable[[np.random.Generator, InstanceSettings, int], TaskFamily],
    on_family: OnFamily,
) -> Callable[[np.random.Generator, InstanceSettings], CheckResult]:
    """A run like the default one that reports every family's detail, not only the worst's.

    For checks whose details are the measurement (ratios, rapidities), so that a run shows
    all of them.
    """

    def run(rng: np.random.Generator, settings: InstanceSettings) -> CheckResult:
        out = [on_family(generate(rng, settings, i), rng, settings)
               for i in range(settings.families)]
        first = out[0]
        res = aggregate_instances(first.name, first.kind, out)
        return replace(res, detail=" | ".join(r.detail for r in out))

    return run


def _default_generate(rng: np.random.Generator, settings: InstanceSettings, i: int) -> TaskFamily:
    return draw_family(rng, settings, i)


@dataclass(frozen=True)
class Check:
    """One check: a claim, how it is tested, on which instances, and its negative control.

    Attributes
    ----------
    name : str
        What ``lowrank-theory check`` prints and ``--only`` takes.
    kind : {"theorem", "consistency", "info"}
        What a failure means (:mod:`lowrank_theory.check_result`).
    statement : str
        The claim in one line (the table and ``--list``).
    reference : str
        Where the paper states it ("Thm 3", "Thm 1 corollary"), or "project" when docs/theory.md
        derives it.
    section : str
        Section of docs/theory.md.
    key : int
        The check's own seed stream (:func:`~lowrank_theory.theorems.instances.stream`), so
        ``--only NAME`` reproduces the instances of the full run.
    settings : InstanceSettings
        The instances it draws per unit of ``--thorough`` (reported by ``--json``).
    check : callable
        The function that tests the claim on given inputs, ``theorems.check_<name>``.
    control : callable
        ``seed -> CheckResult``: a near miss on which the check must report failure.
    control_note : str
        What the control breaks.
    solver : str
        The solver(s) behind the measured values.
    predicted, measured : str
        What the result's ``predicted`` and ``measured`` numbers mean.
    on_family : callable, optional
        ``(family, rng, settings) -> CheckResult``: the check on one instance (the instance
        a user brings with ``check --family``, or one a search builds). None for checks that
        build their own instances (``own_instances`` says why).
    applies : callable
        ``family -> None`` when ``on_family`` applies to the family, else the reason it does
        not (its assumptions: ``"needs T >= 3"``, ``"needs identity covariance (...)"``).
    generate : callable
        ``(rng, settings, i) -> TaskFamily``: the i-th instance of a run (default
        :func:`~lowrank_theory.theorems.instances.draw_family`); each family it draws is
        passed to ``on_family``.
    run : callable, optional
        ``(rng, settings) -> CheckResult`` for checks whose instances are not one family each
        (sweeps, constructions, catalogued instances). Default: ``generate`` then
        ``on_family`` for each of ``settings.families``, aggregated.
    own_instances : str
        Why ``on_family`` is None.
    covariance : str
        Which input covariances the check takes: ``"any"``, or why only the identity.
    """

    name: str
    kind: str
    statement: str
    reference: str
    section: str
    key: int
    settings: InstanceSettings
    check: Callable[..., CheckResult]
    control: Callable[[int], CheckResult]
    control_note: str
    solver: str
    predicted: str
    measured: str
    on_family: OnFamily | None = None
    applies: Applies = always
    generate: Callable[[np.random.Generator, InstanceSettings, int], TaskFamily] = field(
        default=_default_generate)
    run: Callable[[np.random.Generator, InstanceSettings], CheckResult] | None = None
    own_instances: str = ""
    covariance: str = "any"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind must be one of {KINDS}, got {self.kind!r}.")
        if (self.on_family is None) == (not self.own_instances):
            raise ValueError(f"{self.name}: give on_family, or own_instances saying why not.")
        if self.on_family is None and self.run is None:
            raise ValueError(f"{self.name}: a check without on_family needs its own run.")

    @property
    def handle(self) -> str:
        """The name of :attr:`check` in :mod:`lowrank_theory.theorems`."""
        return handle_name(self.name)

    def skip_reason(self, family: TaskFamily) -> str | None:
        """Why the check does not run on ``family`` (None: it does)."""
        if self.on_family is None:
            return f"builds its own instances ({self.own_instances})"
        return self.applies(family)

    def draw(self, rng: np.random.Generator, settings: InstanceSettings | None = None) -> CheckResult:
        """Run the check on the instances of ``settings`` (default: its own) drawn from ``rng``."""
        s = self.settings if settings is None else settings
        if self.run is not None:
            return self.run(rng, s)
        out = []
        for i in range(s.families):
            family = self.generate(rng, s, i)
            out.append(self.on_family(family, rng, s))
        return aggregate_instances(self.name, self.kind, out)

    def run_on(self, family: TaskFamily, seed: int | np.random.Generator | None = 0) -> CheckResult:
        """Run the check on one given family (what ``check --family FILE`` does).

        Raises
        ------
        NotApplicable
            The family is outside the claim's assumptions, or the check builds its own
            instances; the message says why.
        """
        if not isinstance(family, TaskFamily):
            raise TypeError(f"family must be a TaskFamily, got {type(family).__name__}.")
        reason = self.skip_reason(family)
        if reason is not None:
            raise NotApplicable(f"{self.name}: {reason}.")
        return self.on_family(family, as_seed_generator(seed), self.settings)


class Registry(Mapping[str, Check]):
    """Read-only ``name -> Check`` in the order of docs/theory.md, with attribute access.

    ``CHECKS["recovery-t3"]`` and ``CHECKS.recovery_t3`` are the same record.
    """

    def __init__(self, records: Sequence[Check]) -> None:
        names = [r.name for r in records]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate check names: {sorted(n for n in names if names.count(n) > 1)}")
        keys = [r.key for r in records]
        if len(set(keys)) != len(keys):
            raise ValueError("two checks share a seed stream key.")
        bad = [n for n in names if "_" in n]
        if bad:
            raise ValueError(f"check names use '-', not '_' (their handles use '_'): {bad}")
        self._records = {r.name: r for r in records}

    def __getitem__(self, name: str) -> Check:
        return self._records[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def __getattr__(self, attr: str) -> Check:
        try:
            return self.__dict__["_records"][attr.replace("_", "-")]
        except KeyError:
            raise AttributeError(f"no check named {attr.replace('_', '-')!r}") from None

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | {n.replace("-", "_") for n in self})

    def __repr__(self) -> str:
        return f"Registry({len(self)} checks: {', '.join(self)})"
