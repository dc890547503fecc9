"""Hypothesis strategies that build valid instances of the theory by construction.

Dimensions, spectra and condition numbers are drawn by hypothesis (so it can shrink them);
orthogonal factors come from the QR decomposition of a Gaussian matrix seeded by a drawn
integer. Every instance satisfies its claim's hypotheses by construction -- no ``assume()``.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

import lowrank_theory as lt

#: Offset eigenvalues are drawn from this range: well away from 0 (rank exactly k) and from
#: huge values (objective scales stay O(1..100), where absolute tolerances are meaningful).
OFFSET_SPECTRUM = (0.3, 3.0)
#: Largest condition number of a drawn input covariance.
MAX_CONDITION = 20.0

seeds = st.integers(min_value=0, max_value=2**32 - 1)
# Default dimension strategies (module-level so the composite signatures stay call-free).
TASK_COUNTS = st.integers(1, 4)
DIMENSIONS = st.integers(2, 6)
RANKS = st.integers(1, 2)
SAMPLE_SIZES = st.integers(20, 200)


def orthonormal(rng: np.random.Generator, d: int, m: int) -> np.ndarray:
    """A Haar-distributed d x m matrix with orthonormal columns (QR of a Gaussian, signs fixed)."""
    Q, R = np.linalg.qr(rng.standard_normal((d, m)))
    return Q * np.sign(np.diag(R))


@st.composite
def spectra(draw, size: int, low: float = OFFSET_SPECTRUM[0], high: float = OFFSET_SPECTRUM[1]):
    """A vector of ``size`` values in ``[low, high]``."""
    return np.array(draw(st.lists(st.floats(low, high), min_size=size, max_size=size)))


@st.composite
def covariances(draw, d: int, max_condition: float = MAX_CONDITION):
    """A symmetric positive definite d x d matrix with condition number <= ``max_condition``.

    ``O diag(lambda) O^T`` with ``lambda`` in ``[1, kappa]`` (one eigenvalue pinned at each
    end, so the condition number is exactly the drawn ``kappa``).
    """
    kappa = draw(st.floats(1.0, max_condition))
    inner = draw(st.lists(st.floats(1.0, kappa), min_size=max(d - 2, 0), max_size=max(d - 2, 0)))
    lam = np.array(([1.0, kappa] + inner)[:d])
    O = orthonormal(np.random.default_rng(draw(seeds)), d, d)
    return (O * lam) @ O.T


@st.composite
def task_families(
    draw,
    T=TASK_COUNTS,
    d=DIMENSIONS,
    k=RANKS,
    independent: bool = False,
    covariance: bool = False,
    sigma: float = 0.1,
    distinct: bool = False,
    max_condition: float = MAX_CONDITION,
):
    """A TaskFamily with controlled offset spectra.

    ``U*_t = Q_t diag(sqrt(lambda_t)) R_t`` with ``lambda_t`` drawn from ``OFFSET_SPECTRUM``.
    ``independent=True`` draws all ``Q_t`` as disjoint column blocks of one orthonormal
    d x kT matrix mixed by a well-conditioned upper-triangular matrix, so the kT columns of
    ``[U*_1 ... U*_T]`` are linearly independent but not orthogonal (Theorem 3's condition;
    needs ``d >= kT``, ensured by drawing ``d`` last). ``covariance=True`` adds a drawn input
    covariance (condition number up to ``max_condition``). ``distinct=True`` draws task t's
    offset eigenvalues from ``[0.3 + t, 1 + t]``, disjoint ranges, so no two offsets are equal
    (their traces differ by at least 0.3 k): claims that need unequal offsets get them by
    construction, not by chance (with k = d and equal spectra two offsets ``Q diag(lam) Q^T``
    can coincide). The base ``A* = O diag(mu) O^T`` has a drawn spectrum in [-2, 2].
    """
    T_, k_ = draw(T), draw(k)
    if independent:
        d_ = draw(st.integers(k_ * T_, k_ * T_ + 2))
    else:
        d_ = max(draw(d), k_)
    rng = np.random.default_rng(draw(seeds))
    lam = [draw(spectra(k_, 0.3 + t, 1.0 + t) if distinct else spectra(k_)) for t in range(T_)]
    if independent:
        Q = orthonormal(rng, d_, k_ * T_)
        # Upper-triangular mixing with unit-ish diagonal keeps the columns independent and the
        # condition number bounded (entries above the diagonal at most 0.5 / sqrt(kT)).
        M = np.eye(k_ * T_) + np.triu(rng.uniform(-0.5, 0.5, (k_ * T_, k_ * T_)), 1) / np.sqrt(k_ * T_)
        B = Q @ M
        B /= np.linalg.norm(B, axis=0)
        U = np.stack([B[:, t * k_ : (t + 1) * k_] * np.sqrt(lam[t]) for t in range(T_)])
    else:
        U = np.stack([orthonormal(rng, d_, k_) * np.sqrt(lam[t]) for t in range(T_)])
    mu = draw(spectra(d_, -2.0, 2.0))
    O = orthonormal(rng, d_, d_)
    A = (O * mu) @ O.T
    Sigma = draw(covariances(d_, max_condition)) if covariance else None
    return lt.TaskFamily(A, U, sigma, Sigma)


@st.composite
def samples(draw, family_strategy=None, n=SAMPLE_SIZES):
    """A finite sample of a drawn family (``n`` per task, at least ``d + 2``)."""
    fam = draw(task_families() if family_strategy is None else family_strategy)
    n_ = max(draw(n), fam.d + 2)
    return fam.sample(n=n_, seed=draw(seeds))


@st.composite
def points(draw, source, rank=None, asymmetric: bool = False, scale: float = 1.0):
    """A random point ``(A, U, V)`` of the LoRA-ML parameter space of ``source`` (``V`` None if symmetric)."""
    r = draw(st.integers(1, min(source.d, 3))) if rank is None else rank
    rng = np.random.default_rng(draw(seeds))
    A = scale * rng.standard_normal((source.d, source.d))
    U = scale * rng.standard_normal((source.T, source.d, r))
    V = scale * rng.standard_normal((source.T, source.d, r)) if asymmetric else None
    return A, U, V
