"""How the checks draw their instances: settings, random families and covariances, seed streams.

:class:`InstanceSettings` describe the instances of one check (ranges of d, k and T, input
covariances, number of families and starts, samples); :func:`draw_family` draws the i-th family
of a run, :func:`random_covariance` an input covariance of a given condition number, and
:func:`stream` the seed stream of one check. The records of the registry
(:mod:`lowrank_theory.theorems.records`) use them for their runs and their negative controls.

Examples
--------
>>> s = InstanceSettings(RANDOM, (3, 5), (1, 2), (3, 3), families=2, covariances=(None, 100.0))
>>> fam = draw_family(stream(0, 1), s, 1)
>>> fam.T, round(float(np.linalg.cond(fam.Sigma)), 6)
(3, 100.0)
>>> s.to_dict()["covariances"]
['identity', 'random SPD, condition 100']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
from numpy.typing import NDArray

from lowrank_theory._validation import check_int
from lowrank_theory.tasks import TaskFamily

__all__ = [
    "InstanceSettings",
    "PerTask",
    "RANDOM",
    "random_covariance",
    "draw_family",
    "draw",
    "draw_samples",
    "covariance_for",
    "collinear_family",
    "stream",
    "control_family",
    "perturb",
]


# --------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class PerTask:
    """One random SPD input covariance per task, each of condition number ``condition``."""

    condition: float


def _describe(cov: float | PerTask | None) -> str:
    if cov is None:
        return "identity"
    if isinstance(cov, PerTask):
        return f"random SPD per task, condition {cov.condition:g}"
    return f"random SPD, condition {cov:g}"


@dataclass(frozen=True)
class InstanceSettings:
    """The instances a check draws (per unit of ``scale``; ``--thorough`` multiplies ``families``).

    Attributes
    ----------
    generator : str
        How a family is drawn.
    d, k, T : tuple of int
        Inclusive ranges (``k`` is capped at ``d``).
    families : int
        Families drawn.
    covariances : tuple of (None, float or PerTask)
        Input covariances, cycled over the families: None is the identity, a number the
        condition number of one random SPD covariance shared by the tasks
        (:func:`random_covariance`), ``PerTask(c)`` one such covariance per task.
    starts : int
        Random starts (or constructed points) per family, when the check uses any.
    samples : tuple of int, optional
        Range of samples per task when finite samples are drawn.
    notes : str
        Relations between the parameters that the ranges do not show.
    """

    generator: str
    d: tuple[int, int]
    k: tuple[int, int]
    T: tuple[int, int]
    families: int
    covariances: tuple[float | PerTask | None, ...] = (None,)
    starts: int = 0
    samples: tuple[int, int] | None = None
    notes: str = ""

    def scaled(self, scale: int) -> InstanceSettings:
        """The settings with ``scale`` times as many families."""
        return replace(self, families=self.families * check_int(scale, "scale", minimum=0))

    def to_dict(self) -> dict:
        """JSON-ready: ranges as ``[low, high]``, covariances in words."""
        out = asdict(self)
        for key in ("d", "k", "T", "samples"):
            out[key] = None if out[key] is None else list(out[key])
        out["covariances"] = [_describe(c) for c in self.covariances]
        out["samples_per_task"] = out.pop("samples")
        return out


def random_covariance(d: int, cond: float, rng: np.random.Generator) -> NDArray[np.float64]:
    """``Q diag(geomspace(1, cond, d)) Q^T`` with a Haar-random orthogonal ``Q``."""
    Q = np.linalg.qr(rng.standard_normal((d, d)))[0]
    S = (Q * np.geomspace(1.0, cond, d)) @ Q.T
    return (S + S.T) / 2.0  # exactly symmetric, as the covariance validator asks


def _draw(rng: np.random.Generator, bounds: tuple[int, int]) -> int:
    return int(rng.integers(bounds[0], bounds[1] + 1))


def draw(rng: np.random.Generator, bounds: tuple[int, int]) -> int:
    """An integer uniform in the inclusive range ``bounds``."""
    return int(rng.integers(bounds[0], bounds[1] + 1))


def covariance_for(
    cov: float | PerTask | None, d: int, T: int, rng: np.random.Generator
) -> NDArray[np.float64] | None:
    """The input covariance a spec of :attr:`InstanceSettings.covariances` stands for."""
    if cov is None:
        return None
    if isinstance(cov, PerTask):
        return np.stack([random_covariance(d, cov.condition, rng) for _ in range(T)])
    return random_covariance(d, cov, rng)


def draw_family(
    rng: np.random.Generator, s: InstanceSettings, i: int = 0, *, d: int | None = None,
    k: int | None = None, T: int | None = None,
) -> TaskFamily:
    """Family ``i`` of settings ``s``, a ``TaskFamily.random``.

    Dimensions are drawn from the ranges (or given), ``k <= d``, and the covariance is the
    ``i``-th of the cycle.
    """
    d = draw(rng, s.d) if d is None else d
    k = min(draw(rng, s.k) if k is None else k, d)
    T = draw(rng, s.T) if T is None else T
    Sigma = covariance_for(s.covariances[i % len(s.covariances)], d, T, rng)
    return TaskFamily.random(d=d, k=k, T=T, seed=rng, Sigma=Sigma)


def draw_samples(rng: np.random.Generator, s: InstanceSettings, d: int) -> int:
    """Samples per task from ``s.samples``, at least ``d + 2`` (a well-posed least squares)."""
    return max(draw(rng, s.samples), d + 2)


RANDOM = "TaskFamily.random: A* = (G + G^T)/2, U*_t with N(0, 1) entries, sigma = 0.1"



# --------------------------------------------------------------------------- streams, controls
#: Seed stream of the negative controls (above every check's key).
CONTROL_KEY = 1000


def stream(seed: int, key: int) -> np.random.Generator:
    """The random stream ``key`` of base seed ``seed``.

    One independent stream per check, so ``--only NAME`` reproduces the full run's instances.
    """
    return np.random.default_rng(np.random.SeedSequence([int(seed), key]))


def perturb(M: NDArray, rng: np.random.Generator, size: float = 1e-3) -> NDArray:
    """``M`` plus ``size`` times a standard normal matrix (the controls' near misses)."""
    return M + size * rng.standard_normal(M.shape)


def control_family(seed: int, **kw) -> tuple[np.random.Generator, TaskFamily]:
    """The stream of the negative controls and a ``TaskFamily.random(**kw)`` drawn from it."""
    rng = stream(seed, CONTROL_KEY)
    return rng, TaskFamily.random(seed=rng, **kw)


def collinear_family(
    rng: np.random.Generator, d: int, T: int, c: Sequence[float] | None = None
) -> TaskFamily:
    """A family of rank-1 offsets ``c_t q q^T`` along one random unit ``q``.

    ``c`` defaults to ``U(0.5, 2)`` draws: bounded away from 0, so the continuum of minima
    ``A* + a q q^T`` (``a < min c_t``) moves the base by a visible amount.
    """
    base = TaskFamily.random(d=d, k=1, T=1, seed=rng)
    q = base.U_star[0] / np.linalg.norm(base.U_star[0])
    c = rng.uniform(0.5, 2.0, T) if c is None else np.asarray(c, dtype=float)
    return TaskFamily(base.A_star, np.sqrt(c)[:, None, None] * q[None])
