"""Frozen, validated experiment configurations and their quick / full sweeps.

A config holds everything that changes an experiment's numbers except the seed, so the pair
(config, seed) determines a run completely. Its hash (:meth:`ExperimentConfig.config_hash`) names
the run's result file: a changed config gets a new hash and is never mixed with old rows.

Each experiment has two sizes: ``quick`` (every experiment together in well under five minutes on
two cores, for ``make reproduce``) and ``full`` (the paper's settings, for ``make reproduce-full``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from lowrank_theory.simulations.fields import check_fields, param

from lowrank_theory._validation import check_int
from lowrank_theory.adaptation import PAPER_FT_LR
from lowrank_theory.paper_protocol import PAPER_ROUNDS
from lowrank_theory.tasks import PAPER_SIGMA

__all__ = [
    "SIZES",
    "RECOVERED",
    "ExperimentConfig",
    "VaryConfig",
    "VARY_DEFAULTS",
    "VARY_VALUES",
    "vary_configs",
    "PhaseConfig",
    "phase_configs",
    "RateConfig",
    "LandscapeConfig",
    "AtlasConfig",
    "atlas_configs",
    "MAX_SEED",
    "Sweep",
]

#: The sizes every experiment defines.
SIZES: tuple[str, ...] = ("quick", "full")
#: Largest seed: the tables' ``seed`` column is int64 (a larger seed would turn it into uint64
#: in one unit's file and the combined column into floats), and torch seeds its generators with
#: 64-bit integers.
MAX_SEED = 2**63 - 1
#: Relative ``||A^ - A*||_F`` below which a fitted base counts as recovering ``A*``: the exact
#: solvers stop near 1e-12, far below the O(1) errors of non-identified cases (T <= 2).
RECOVERED = 1e-6


@dataclass(frozen=True)
class ExperimentConfig:
    """Base class of experiment configs: hashing, serialisation and table columns.

    Subclasses are frozen dataclasses whose fields are ints, floats, strings or tuples of
    ints, and which validate themselves in ``_validate`` (called on construction).
    """

    #: Bumped when an experiment's code changes its numbers, so old result files are not reused.
    SCHEMA: ClassVar[int] = 1

    def __post_init__(self) -> None:
        check_fields(self)
        self._validate()
        # The validators accept numpy scalars; the fields hold Python ones, so that a config
        # hashes (canonical JSON) the same whichever kind it was given.
        for f in dataclasses.fields(self):
            if isinstance(value := getattr(self, f.name), np.generic):
                object.__setattr__(self, f.name, value.item())

    def _validate(self) -> None:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-serialisable dict (tuples become lists)."""
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in dataclasses.fields(self)
        }

    def config_hash(self) -> str:
        """Return a 12-hex-digit SHA-256 of the config's class, schema version and fields.

        Notes
        -----
        The hash is computed from canonical JSON (sorted keys, ``repr`` of floats), so it is
        the same on every machine and Python run, unlike the built-in ``hash``.

        Examples
        --------
        >>> VaryConfig().config_hash() == VaryConfig(d=10).config_hash() != VaryConfig(d=5).config_hash()
        True
        """
        payload = {"type": type(self).__name__, "schema": self.SCHEMA, "fields": self.to_dict()}
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def columns(self) -> dict[str, Any]:
        """Return the scalar fields, written as columns of every result row of this config."""
        return {k: v for k, v in self.to_dict().items() if not isinstance(v, list)}


#: Defaults of the paper's vary set, and the values each parameter takes in turn.
VARY_DEFAULTS: dict[str, int] = {"d": 10, "T": 3, "N": 5000, "n": 100, "k": 1}
VARY_VALUES: dict[str, tuple[int, ...]] = {
    "d": (5, 10, 20),
    "T": (2, 3, 5),
    "N": (100, 1000, 10000),
    "n": (100, 1000, 10000),
    "k": (1, 2, 3),
}
#: Fine-tuning steps of each sweep in the authors' script. (Their k figure draws only the
#: first 1,000 of its 10,000.)
VARY_FT_STEPS: dict[str, int] = {"d": 1400, "T": 10000, "N": 1000, "n": 1000, "k": 10000}
#: The sweeps run again with ``authors_quirks=True``: the six settings compared with the
#: authors' script.
VARY_QUIRKS_PARAMS: tuple[str, ...] = ("T", "d")


#: ``fit_lora_ml`` methods a config may name.
SOLVERS: tuple[str, ...] = ("exact", "lbfgs", "paper")
#: Ground-truth schemes of the vary experiment (see :class:`VaryConfig`).
VARY_FAMILIES: tuple[str, ...] = ("per-run", "per-seed")


@dataclass(frozen=True)
class VaryConfig(ExperimentConfig):
    """One configuration of the paper's linear "vary" set (docs/theory.md, section 15).

    The defaults are the authors' (``linear/run.py`` of github.com/jacob-block/peft-ml) at the
    default point of the set. The experiment itself is :func:`lowrank_theory.simulations.vary.run_vary`.

    Parameters
    ----------
    d, T, N, n, k : int
        Dimension, number of retraining tasks, samples per retraining task, samples of the new
        task, adapter rank.
    sigma : float
        Noise standard deviation (but see ``authors_quirks``).
    rounds : int
        Block-coordinate rounds of the paper's LoRA-ML retraining
        (``fit_lora_ml(method="paper")``, the authors' steps); also the base steps of the
        authors' SR baseline.
    ft_steps : int
        Gradient steps of fine-tuning on the new task. The authors run 10,000 in their T and k
        sweeps, 1,400 in the d sweep and 1,000 in the N and n sweeps (``VARY_FT_STEPS``).
    ft_lr : float
        Fine-tuning step size (0.005 in the paper), on the half mean squared error.
    family : {"per-run", "per-seed"}
        ``"per-run"`` (the authors'): one ground truth (base, offsets, new task, fine-tuning
        start) for every seed, drawn from ``family_seed`` at the largest shape of the vary set
        and sliced, so the configs of the set are nested; the seeds vary only the samples and
        the retraining start. ``"per-seed"``: a fresh ground truth for every seed, so the
        seed bands also show the variation across families.
    family_seed : int
        Seed of the ``"per-run"`` ground truth (unused by ``"per-seed"``).
    authors_quirks : bool
        Reproduce two departures of the authors' script: noise with standard deviation
        ``sigma**2``, and their SR baseline (gradient descent on ``A`` with random, never
        updated ``U0_t U0_t^T`` inside), reported as method ``"SR (authors)"`` beside the
        pooled least-squares SR.
    """

    d: int = param(VARY_DEFAULTS["d"], "input and output dimension", minimum=1)
    T: int = param(VARY_DEFAULTS["T"], "number of retraining tasks (the fine-tuning rank is 3k when T = 2)",
                   minimum=1)
    N: int = param(VARY_DEFAULTS["N"], "samples per retraining task", minimum=1)
    n: int = param(VARY_DEFAULTS["n"], "samples of the new task used for fine-tuning", minimum=1)
    k: int = param(VARY_DEFAULTS["k"], "rank of the true offsets and of the adapters", minimum=1, note="<= d")
    sigma: float = param(PAPER_SIGMA, "noise standard deviation (sigma**2 with authors_quirks)",
                         minimum=0)
    rounds: int = param(PAPER_ROUNDS, "block-coordinate rounds of LoRA-ML retraining (the paper's "
                              "protocol); also the base steps of the authors' SR", minimum=1)
    # The default point belongs to the T and k sweeps, which run the most steps.
    ft_steps: int = param(max(VARY_FT_STEPS.values()), "gradient steps of fine-tuning on the new task", minimum=1)
    ft_lr: float = param(PAPER_FT_LR, "fine-tuning step size, on the half mean squared error",
                         minimum=0, exclusive=True)
    family: str = param("per-run", "ground truth: one for all seeds (per-run, the authors') or "
                                   "a fresh one per seed (per-seed)", choices=VARY_FAMILIES)
    family_seed: int = param(0, "seed of the per-run ground truth", minimum=0)
    authors_quirks: bool = param(False, "reproduce the authors' noise (sd sigma**2) and their "
                                        "SR baseline, reported as 'SR (authors)'")

    def _validate(self) -> None:
        if self.k > self.d:
            raise ValueError(f"k must be <= d (a rank-k offset in dimension d); got k={self.k}, "
                             f"d={self.d}")

    @property
    def ft_rank(self) -> int:
        """Fine-tuning adapter rank of the paper protocol: ``k``, or ``3k`` when ``T = 2``.

        With two tasks LoRA-ML may recover ``A*`` only up to a rank-2k error (docs/theory.md,
        section 7.3), so the paper gives the fine-tuning adapter the room to absorb it.
        """
        return min(3 * self.k, self.d) if self.T == 2 else self.k

    @property
    def noise_std(self) -> float:
        """Standard deviation of the sampled noise: ``sigma``, or ``sigma**2`` with quirks."""
        return self.sigma**2 if self.authors_quirks else self.sigma

    def columns(self) -> dict[str, Any]:
        """Scalar fields plus the derived fine-tuning rank and noise standard deviation."""
        return {**super().columns(), "ft_rank": self.ft_rank, "noise_std": self.noise_std}


def vary_configs(params: Sequence[str] = tuple(VARY_VALUES), **overrides: Any
                 ) -> tuple[VaryConfig, ...]:
    """Return the distinct configs of the vary set, one parameter changed at a time.

    The default point (d=10, T=3, N=5000, n=100, k=1) belongs to the d, T, n and k sweeps
    (not to the N sweep, whose values are 100, 1,000 and 10,000); it is run once, with the
    most fine-tuning steps of its sweeps, and the figures cut each panel at its own sweep's
    count (gradient descent's first 1,000 steps do not depend on how many follow).

    Parameters
    ----------
    params : sequence of str
        The sweeps (keys of ``VARY_VALUES``).
    **overrides
        Fields shared by every config (``rounds``, ``sigma``, ``authors_quirks``...); an
        ``ft_steps`` given here replaces the per-sweep counts of ``VARY_FT_STEPS``.

    Examples
    --------
    >>> [(c.d, c.ft_steps) for c in vary_configs(params=("d",))]
    [(5, 1400), (10, 1400), (20, 1400)]
    >>> len(vary_configs()), {c.ft_steps for c in vary_configs() if c.T == 2}
    (12, {10000})
    """
    unknown = [p for p in params if p not in VARY_VALUES]
    if unknown:
        raise ValueError(f"params must be among {list(VARY_VALUES)}, got {unknown}")
    steps: dict[tuple[tuple[str, int], ...], int] = {}
    for name in params:
        for value in VARY_VALUES[name]:
            point = tuple({**VARY_DEFAULTS, name: value}.items())
            steps[point] = max(steps.get(point, 0), VARY_FT_STEPS[name])
    return tuple(VaryConfig(**dict(point), **{"ft_steps": ft_steps, **overrides})
                 for point, ft_steps in steps.items())


@dataclass(frozen=True)
class PhaseConfig(ExperimentConfig):
    """One cell of the recovery phase diagram: population LoRA-ML with T tasks and rank k.

    Parameters
    ----------
    d, T, k : int
        Dimension, number of tasks, rank of the ground-truth offsets and of the adapters.
    solver : str
        ``fit_lora_ml`` method; ``"exact"`` (alternating closed-form minimisation).
    restarts : int
        Random starts per fit; the lowest objective is kept (a global minimum is what the
        theorems describe, so a spurious local minimum should not count as a failure).
    """

    d: int = param(10, "input and output dimension", minimum=1)
    T: int = param(3, "number of tasks", minimum=1)
    k: int = param(1, "rank of the true offsets and of the adapters", minimum=1, note="<= d")
    solver: str = param("exact", "fit_lora_ml method", choices=SOLVERS)
    restarts: int = param(3, "random starts per fit; the lowest objective is kept", minimum=1)

    def _validate(self) -> None:
        if self.k > self.d:
            raise ValueError(f"k must be <= d; got k={self.k}, d={self.d}")

    def columns(self) -> dict[str, Any]:
        """Scalar fields plus the rank ratio ``k/d`` and the independence budget ``kT/d``."""
        return {**super().columns(), "k_over_d": self.k / self.d, "kT_over_d": self.k * self.T / self.d}


def phase_configs(d: int, ks: Sequence[int], Ts: Sequence[int], **kw: Any) -> tuple[PhaseConfig, ...]:
    """Return the phase-diagram grid, ``T`` varying fastest."""
    return tuple(PhaseConfig(d=d, T=T, k=k, **kw) for k in ks for T in Ts)


@dataclass(frozen=True)
class RateConfig(ExperimentConfig):
    """Post-adaptation excess loss against the fine-tuning sample size ``n``.

    Parameters
    ----------
    d, T, k, N : int
        Dimension, retraining tasks, rank, samples per retraining task.
    sigma : float
        Noise standard deviation.
    n_grid : tuple of int
        Fine-tuning sample sizes, increasing.
    """

    d: int = param(VARY_DEFAULTS["d"], "input and output dimension", minimum=1)
    T: int = param(VARY_DEFAULTS["T"], "number of retraining tasks", minimum=1)
    k: int = param(VARY_DEFAULTS["k"], "rank of the true offsets and of the fine-tuning adapter", minimum=1,
                   note="<= d")
    N: int = param(VARY_DEFAULTS["N"], "samples per retraining task", minimum=1)
    sigma: float = param(PAPER_SIGMA, "noise standard deviation", minimum=0, exclusive=True)
    n_grid: tuple[int, ...] = param((20, 50, 100, 200, 500, 1000, 2000, 5000, 10000),
                                    "fine-tuning sample sizes (the x axis)", minimum=1,
                                    increasing=True)

    def _validate(self) -> None:
        if self.k > self.d:
            raise ValueError(f"k must be <= d; got k={self.k}, d={self.d}")


@dataclass(frozen=True)
class LandscapeConfig(ExperimentConfig):
    """Many random starts of LoRA-ML on one population problem (T = 2 against T = 3).

    Parameters
    ----------
    d, T, k : int
        Dimension, number of tasks, rank.
    starts : int
        Random starts per ground-truth family (per seed).
    solver : str
        ``fit_lora_ml`` method run from each start.
    """

    d: int = param(6, "input and output dimension", minimum=1)
    T: int = param(2, "number of tasks", minimum=1)
    k: int = param(1, "rank of the true offsets and of the adapters", minimum=1, note="<= d")
    starts: int = param(100, "random starts per ground-truth family (per seed)", minimum=1)
    solver: str = param("lbfgs", "fit_lora_ml method run from each start", choices=SOLVERS)

    def _validate(self) -> None:
        if self.k > self.d:
            raise ValueError(f"k must be <= d; got k={self.k}, d={self.d}")


@dataclass(frozen=True)
class AtlasConfig(ExperimentConfig):
    """One cell of the landscape atlas: random population families of one shape (d, k, T).

    Each seed draws one family (``TaskFamily.random``, Sigma = I). The experiment itself is
    :func:`lowrank_theory.simulations.atlas.run_atlas`.

    Parameters
    ----------
    d, k, T : int
        Dimension, rank of the offsets and of the adapters, number of tasks.
    search_starts : int
        L-BFGS starts (``A0``, ``U0`` with i.i.d. ``N(0, 1)`` entries) of the spurious-minimum
        search per family (``find_spurious_minimum``); the end of the family's paper-protocol
        run is certified too. The search's budget: a family where it finds nothing may still
        have a spurious local minimum.
    rounds : int
        Round budget of the paper-protocol run (the paper runs 3000).
    """

    d: int = param(10, "input and output dimension", minimum=1)
    k: int = param(1, "rank of the offsets and of the adapters", minimum=1, note="<= d")
    T: int = param(3, "number of tasks", minimum=1)
    search_starts: int = param(10, "L-BFGS starts of the spurious-minimum search per family",
                               minimum=0)
    rounds: int = param(30_000, "round budget of each paper-protocol run (the paper runs "
                                "3000)", minimum=1)

    def _validate(self) -> None:
        if self.k > self.d:
            raise ValueError(f"k must be <= d; got k={self.k}, d={self.d}")

    def columns(self) -> dict[str, Any]:
        """Scalar fields plus ``kT/d`` (the offset columns can be independent only if <= 1).

        Examples
        --------
        >>> AtlasConfig(d=4, k=2, T=3).columns()["kT_over_d"]
        1.5
        """
        return {**super().columns(), "kT_over_d": self.k * self.T / self.d}


#: The atlas grid: every (d, k, T) with d, k and T from these values.
ATLAS_D: tuple[int, ...] = (3, 4, 6, 10, 20)
ATLAS_K: tuple[int, ...] = (1, 2)
ATLAS_T: tuple[int, ...] = (3, 5)


def atlas_configs(ds: Sequence[int] = ATLAS_D, ks: Sequence[int] = ATLAS_K,
                  Ts: Sequence[int] = ATLAS_T, **kw: Any) -> tuple[AtlasConfig, ...]:
    """Return the atlas cells, ``T`` varying fastest, then ``d``, then ``k``.

    Examples
    --------
    >>> [(c.d, c.k, c.T) for c in atlas_configs(ds=(3, 4), ks=(1,))]
    [(3, 1, 3), (3, 1, 5), (4, 1, 3), (4, 1, 5)]
    >>> len(atlas_configs())
    20
    """
    return tuple(AtlasConfig(d=d, k=k, T=T, **kw) for k in ks for d in ds for T in Ts)


@dataclass(frozen=True)
class Sweep:
    """The configs and seeds one size of an experiment runs (every config with every seed)."""

    configs: tuple[ExperimentConfig, ...]
    seeds: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.configs:
            raise ValueError("configs must be a non-empty tuple of ExperimentConfig")
        for i, config in enumerate(self.configs):
            if not isinstance(config, ExperimentConfig):
                raise TypeError(f"configs[{i}] must be an ExperimentConfig, got {config!r}")
        hashes = [c.config_hash() for c in self.configs]
        if len(set(hashes)) != len(hashes):
            raise ValueError("configs must be distinct (two configs have the same hash)")
        if not self.seeds:
            raise ValueError("seeds must be a non-empty tuple of ints")
        for i, seed in enumerate(self.seeds):
            check_int(seed, f"seeds[{i}]", minimum=0)
            if seed > MAX_SEED:
                raise ValueError(f"seeds[{i}] must be at most 2**63 - 1 = {MAX_SEED}, got {seed}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct, got {self.seeds}")
