"""Low-rank adapters: how a task's model departs from the shared base.

An adapter maps per-task factors to an update ``Delta_t`` added to the base, ``W_t = A + Delta_t``.
The solvers, losses and fine-tuning routines only use the four methods of :class:`Adapter`
(``delta``, ``factor_gradients``, ``init_factors`` and ``project``), so a new scheme (per-task
ranks, a frozen subspace, ...) is a new subclass and needs no change elsewhere.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from lowrank_theory._validation import check_int

__all__ = ["Adapter", "SymmetricAdapter", "AsymmetricAdapter", "as_adapter", "Factors"]

#: Per-task factors of an adapter: ``(U,)`` or ``(U, V)``, each of shape (..., T, d, r).
Factors = tuple[NDArray[np.float64], ...]


def _swap(M: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.swapaxes(M, -1, -2)


@dataclass(frozen=True)
class Adapter(ABC):
    """A rank-``r`` adapter family.

    Parameters
    ----------
    rank : int
        The adapter rank ``r >= 1``.
    """

    rank: int

    def __post_init__(self) -> None:
        check_int(self.rank, "rank")

    #: Number of factor arrays the adapter carries.
    n_factors: ClassVar[int] = 0
    #: Whether ``Delta_t`` is symmetric positive semi-definite by construction.
    symmetric: ClassVar[bool] = False

    @abstractmethod
    def delta(self, factors: Factors) -> NDArray[np.float64]:
        """The update ``Delta_t`` of every task, shape (..., T, d, d)."""

    @abstractmethod
    def factor_gradients(self, factors: Factors, G: NDArray[np.float64]) -> Factors:
        """Chain rule: gradients of the factors given ``G = dL/dW_t`` of shape (..., T, d, d)."""

    @abstractmethod
    def project(self, M: NDArray[np.float64]) -> Factors:
        """Factors of the update closest to ``M`` in Frobenius norm (the population U-step).

        Parameters
        ----------
        M : ndarray of shape (..., T, d, d)
        """

    def init_factors(self, T: int, d: int, rng: np.random.Generator, scale: float = 0.1) -> Factors:
        """Random factors with i.i.d. ``N(0, scale^2)`` entries, shape (T, d, rank) each."""
        return tuple(scale * rng.standard_normal((T, d, self.rank)) for _ in range(self.n_factors))

    def check_rank(self, d: int) -> None:
        """Raise ``ValueError`` if the rank exceeds the dimension ``d``."""
        if self.rank > d:
            raise ValueError(f"adapter rank must be <= d={d}, got rank={self.rank}.")


@dataclass(frozen=True)
class SymmetricAdapter(Adapter):
    """``Delta_t = U_t U_t^T`` with ``U_t`` of shape (d, r): the theory's PSD adapter.

    Examples
    --------
    >>> import numpy as np
    >>> ad = SymmetricAdapter(1)
    >>> ad.delta((np.ones((1, 2, 1)),))[0]
    array([[1., 1.],
           [1., 1.]])
    """

    n_factors: ClassVar[int] = 1
    symmetric: ClassVar[bool] = True

    def delta(self, factors: Factors) -> NDArray[np.float64]:  # noqa: D102
        (U,) = factors
        return U @ _swap(U)

    def factor_gradients(self, factors: Factors, G: NDArray[np.float64]) -> Factors:
        """``dL/dU_t = (G_t + G_t^T) U_t``."""
        (U,) = factors
        return ((G + _swap(G)) @ U,)

    def project(self, M: NDArray[np.float64]) -> Factors:
        """Best PSD rank-r approximation of ``sym(M)``: keep the r largest positive eigenvalues.

        Notes
        -----
        For symmetric ``P``, ``||M - P||^2 = ||skew(M)||^2 + ||sym(M) - P||^2``, so only the
        symmetric part matters; eigenvalues below zero are clipped since ``U U^T`` is PSD.
        """
        S = (M + _swap(M)) / 2.0
        # numpy's eigh batches over leading axes (scipy.linalg.eigh does not).
        lam, vec = np.linalg.eigh(S)
        lam, vec = lam[..., -self.rank :], vec[..., -self.rank :]
        return (vec * np.sqrt(np.clip(lam, 0.0, None))[..., None, :],)


@dataclass(frozen=True)
class AsymmetricAdapter(Adapter):
    """``Delta_t = U_t V_t^T`` with ``U_t, V_t`` of shape (d, r): the LoRA ``B A`` product."""

    n_factors: ClassVar[int] = 2
    symmetric: ClassVar[bool] = False

    def delta(self, factors: Factors) -> NDArray[np.float64]:  # noqa: D102
        U, V = factors
        return U @ _swap(V)

    def factor_gradients(self, factors: Factors, G: NDArray[np.float64]) -> Factors:
        """``dL/dU_t = G_t V_t`` and ``dL/dV_t = G_t^T U_t``."""
        U, V = factors
        return (G @ V, _swap(G) @ U)

    def project(self, M: NDArray[np.float64]) -> Factors:
        """Eckart-Young: the rank-r truncated SVD, split evenly ``U = P sqrt(s)``, ``V = Q sqrt(s)``."""
        P, s, Qt = np.linalg.svd(M)
        root = np.sqrt(s[..., : self.rank])[..., None, :]
        return (P[..., : self.rank] * root, _swap(Qt)[..., : self.rank] * root)


def as_adapter(adapter: Adapter | int | str | None, rank: int | None = None) -> Adapter:
    """Normalise the ``adapter`` argument of the public functions.

    Parameters
    ----------
    adapter : Adapter, int, {"symmetric", "asymmetric"} or None
        An adapter, a rank (symmetric adapter of that rank), a kind name (with ``rank``), or
        None (symmetric adapter of rank ``rank``).
    rank : int, optional
        Rank used with a kind name or None.

    Raises
    ------
    ValueError, TypeError
        Unknown kind, missing or invalid rank, or a rank that disagrees with the adapter's.
    """
    if isinstance(adapter, Adapter):
        if rank is not None and rank != adapter.rank:
            raise ValueError(f"rank={rank} disagrees with the adapter's rank {adapter.rank}.")
        return adapter
    if isinstance(adapter, (int, np.integer)) and not isinstance(adapter, bool):
        if rank is not None and rank != adapter:
            raise ValueError(f"rank={rank} disagrees with adapter={adapter}.")
        return SymmetricAdapter(int(adapter))
    kinds = {"symmetric": SymmetricAdapter, "asymmetric": AsymmetricAdapter}
    if adapter is None:
        adapter = "symmetric"
    if isinstance(adapter, str):
        if adapter not in kinds:
            raise ValueError(f"adapter must be one of {sorted(kinds)}, got {adapter!r}.")
        if rank is None:
            raise ValueError("give the adapter rank (k or rank) with an adapter kind name.")
        return kinds[adapter](check_int(rank, "rank"))
    raise TypeError(
        f"adapter must be an Adapter, an int rank or a kind name, got {type(adapter).__name__}."
    )
