"""Synthetic multi-task low-rank linear regression: the ground truth and its samples.

A task family holds a base ``A*`` and one rank-k PSD offset ``U*_t U*_t^T`` per task, so that
task ``t`` has parameter ``W*_t = A* + U*_t U*_t^T``. A sample of task ``t`` is
``x ~ N(0, Sigma_t)``, ``y = W*_t x + eps`` with ``eps ~ N(0, sigma^2 I_d)``.

Both classes are immutable: they keep private read-only copies of their arrays and show
read-only views of them, so a family or a sample cannot change after it was validated. The
random constructions live in :mod:`lowrank_theory.families`; the classmethods here call them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lowrank_theory import families
from lowrank_theory._repr import summary_repr
from lowrank_theory._validation import (
    MAX_BYTES,
    check_array,
    check_covariance,
    check_data_scale,
    check_float,
    check_int,
    check_squares,
)

__all__ = ["TaskFamily", "TaskData", "PAPER_SIGMA"]

#: The paper's output-noise standard deviation (its synthetic linear experiments).
PAPER_SIGMA = 0.1


def _readonly(arr: NDArray[np.float64]) -> NDArray[np.float64]:
    # A view of a private copy held in an immutable bytes object: numpy refuses to make the
    # view, or anything else over that memory, writeable (``flags.writeable = True`` raises
    # ValueError), so no caller can change a validated array, not even through ``.base``.
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    return np.frombuffer(arr.tobytes(), dtype=np.float64).reshape(arr.shape)


@dataclass(frozen=True, eq=False)
class TaskFamily:
    """Ground truth of a multi-task low-rank linear regression.

    Parameters
    ----------
    A_star : array_like of shape (d, d)
        The shared base ``A*``.
    U_star : array_like of shape (T, d, k)
        Offset factors; task ``t`` has parameter ``A* + U_star[t] @ U_star[t].T``.
    sigma : float, default=0.1
        Standard deviation of the output noise (per coordinate). The authors' script used
        ``sigma**2`` as the standard deviation by mistake: pass ``sigma=0.01`` to mimic it.
    Sigma : array_like of shape (d, d) or (T, d, d), optional
        Input covariance, shared or per task; must be symmetric positive definite.
        ``None`` (the paper's setting) means the identity and enables the fast exact paths.

    Raises
    ------
    ValueError
        Wrong shapes, ``k > d``, non-finite entries, negative ``sigma``, a scale whose squared
        losses overflow (``T d sigma^2`` past ``SQUARE_MAX = 1e290``: the message names the
        argument and its bound), or a covariance that is not symmetric positive definite.
    TypeError
        Complex or non-numeric arrays.

    Notes
    -----
    The arrays are stored as private read-only copies and shown as read-only views:
    writing into the caller's arrays afterwards does not change the family, and
    ``fam.A_star.flags.writeable = True`` raises ``ValueError``.

    Examples
    --------
    >>> fam = TaskFamily.random(d=4, k=1, T=3, seed=0)
    >>> fam.d, fam.k, fam.T
    (4, 1, 3)
    >>> data = fam.sample(n=50, seed=1)
    >>> data.X.shape, data.Y.shape
    ((3, 50, 4), (3, 50, 4))
    """

    A_star: NDArray[np.float64]
    U_star: NDArray[np.float64]
    sigma: float = PAPER_SIGMA
    Sigma: NDArray[np.float64] | None = field(default=None)

    def __post_init__(self) -> None:
        A = check_array(self.A_star, "A_star", (None, None))
        if A.shape[0] != A.shape[1] or A.shape[0] < 1:
            raise ValueError(f"A_star must be a non-empty square (d, d) matrix, got {A.shape}.")
        d = A.shape[0]
        U = check_array(self.U_star, "U_star")
        if U.ndim != 3 or U.shape[1] != d:
            raise ValueError(
                f"U_star must have shape (T, d={d}, k), got {U.shape}; "
                "stack the per-task factors along a first axis."
            )
        T, _, k = U.shape
        if T < 1:
            raise ValueError("U_star must hold at least one task (T >= 1).")
        if k < 1 or k > d:
            raise ValueError(f"the offset rank k must satisfy 1 <= k <= d={d}, got k={k}.")
        sigma = check_float(self.sigma, "sigma", minimum=0.0)
        # The population losses add up, over T tasks and d x d entries, the squares of the
        # noise, the base and the offsets (whose entries reach k max|U|^2).
        check_squares(sigma, T * d, "sigma", "the losses (d sigma^2 per task)")
        check_squares(float(np.max(np.abs(A))), T * d * d, "A_star", entries_of="its entries")
        with np.errstate(over="ignore"):
            offset_entry = k * float(np.max(np.abs(U))) ** 2
        check_squares(offset_entry, T * d * d, "U_star",
                      entries_of="the offsets' entries (k max|U_star|^2)")
        Sigma = None if self.Sigma is None else check_covariance(self.Sigma, "Sigma", d, T)
        object.__setattr__(self, "A_star", _readonly(A))
        object.__setattr__(self, "U_star", _readonly(U))
        object.__setattr__(self, "sigma", sigma)
        object.__setattr__(self, "Sigma", None if Sigma is None else _readonly(Sigma))

    def __reduce__(self):
        # Unpickling goes through the constructor, so a copy is validated and read-only too.
        return (type(self), (self.A_star, self.U_star, self.sigma, self.Sigma))

    def __repr__(self) -> str:
        return summary_repr(type(self).__name__, {
            "d": self.d, "k": self.k, "T": self.T, "sigma": self.sigma,
            "Sigma": self.Sigma})

    # ------------------------------------------------------------------ constructors
    @classmethod
    def random(
        cls,
        d: int,
        k: int,
        T: int,
        sigma: float = PAPER_SIGMA,
        seed: int | np.random.Generator | None = None,
        Sigma: ArrayLike | None = None,
        max_bytes: int | None = MAX_BYTES,
    ) -> TaskFamily:
        """Draw the paper's random family: ``A* = (G + G^T)/2``, ``U*_t`` i.i.d. ``N(0, 1)``.

        Parameters
        ----------
        d, k, T : int
            Dimension, offset rank (``1 <= k <= d``) and number of tasks (``T >= 1``).
        sigma : float, default=0.1
            Noise standard deviation.
        seed : int, Generator or None
            Source of randomness.
        Sigma : array_like of shape (d, d) or (T, d, d), optional
            Input covariance (identity if None).
        max_bytes : int or None, default=MAX_BYTES
            Refuse to allocate more than this many bytes (2 GiB); None lifts the limit.
        """
        return cls(*families.draw_random(d, k, T, seed, max_bytes), sigma, Sigma)

    @classmethod
    def orthonormal(
        cls,
        d: int,
        k: int,
        T: int,
        scale: float = 1.0,
        sigma: float = PAPER_SIGMA,
        seed: int | np.random.Generator | None = None,
        max_bytes: int | None = MAX_BYTES,
    ) -> TaskFamily:
        """Family whose offsets have mutually orthonormal columns (``kT <= d``), scaled by ``scale``.

        See :func:`lowrank_theory.families.draw_orthonormal`; ``max_bytes`` bounds the
        allocation as in :meth:`random`.
        """
        return cls(*families.draw_orthonormal(d, k, T, scale, seed, max_bytes), sigma)

    @classmethod
    def collinear(
        cls,
        d: int,
        k: int,
        T: int,
        sigma: float = PAPER_SIGMA,
        seed: int | np.random.Generator | None = None,
        max_bytes: int | None = MAX_BYTES,
    ) -> TaskFamily:
        """Family whose offsets all share one k-dimensional column space.

        ``U*_t = Q R_t`` (:func:`lowrank_theory.families.draw_collinear`): for ``T > 1`` the
        offset columns are not linearly independent, the condition under which
        :mod:`lowrank_theory.theorems` finds exact recovery for ``T >= 3``. A counterexample
        family for recovery. ``max_bytes`` bounds the allocation as in :meth:`random`.
        """
        return cls(*families.draw_collinear(d, k, T, seed, max_bytes), sigma)

    @classmethod
    def from_spectrum(
        cls,
        offset_spectrum: ArrayLike,
        d: int,
        base_spectrum: ArrayLike | None = None,
        sigma: float = PAPER_SIGMA,
        seed: int | np.random.Generator | None = None,
        max_bytes: int | None = MAX_BYTES,
    ) -> TaskFamily:
        """Family with chosen offset eigenvalues (and optionally a chosen base spectrum).

        Parameters
        ----------
        offset_spectrum : array_like of shape (T, k)
            Positive eigenvalues of each ``U*_t U*_t^T``; ``U*_t = Q_t diag(sqrt(lambda_t))``
            with a random orthonormal ``Q_t`` (d, k).
        d : int
            Dimension.
        base_spectrum : array_like of shape (d,), optional
            Eigenvalues of the symmetric base ``A* = O diag(base) O^T``; random if None.
        max_bytes : int or None, default=MAX_BYTES
            Refuse to allocate more than this many bytes; None lifts the limit.
        """
        return cls(*families.draw_from_spectrum(offset_spectrum, d, base_spectrum, seed, max_bytes),
                   sigma)

    # ------------------------------------------------------------------ properties
    @property
    def d(self) -> int:
        """Input and output dimension."""
        return self.A_star.shape[0]

    @property
    def k(self) -> int:
        """Rank of each task offset."""
        return self.U_star.shape[2]

    @property
    def T(self) -> int:
        """Number of tasks."""
        return self.U_star.shape[0]

    @property
    def offsets(self) -> NDArray[np.float64]:
        """Task offsets ``U*_t U*_t^T``, shape (T, d, d)."""
        return self.U_star @ np.swapaxes(self.U_star, 1, 2)

    @property
    def W_star(self) -> NDArray[np.float64]:
        """Task parameters ``W*_t = A* + U*_t U*_t^T``, shape (T, d, d)."""
        return self.A_star + self.offsets

    @property
    def isotropic(self) -> bool:
        """True when every task's input covariance is the identity."""
        return self.Sigma is None

    def task_covariances(self) -> NDArray[np.float64]:
        """Input covariance of each task, shape (T, d, d) (a broadcast view, no copy)."""
        S = np.eye(self.d) if self.Sigma is None else self.Sigma
        return np.broadcast_to(S, (self.T, self.d, self.d))

    # ------------------------------------------------------------------ sampling
    def sample(
        self,
        n: int,
        seed: int | np.random.Generator | None = None,
        max_bytes: int | None = MAX_BYTES,
    ) -> TaskData:
        """Draw ``n`` i.i.d. samples of every task.

        Parameters
        ----------
        n : int
            Samples per task (``n >= 1``).
        seed : int, Generator or None
            Source of randomness.
        max_bytes : int or None, default=MAX_BYTES
            Refuse to allocate more than this many bytes (inputs, outputs and noise, 2 GiB by
            default); None lifts the limit.

        Returns
        -------
        TaskData
            ``X`` and ``Y`` of shape (T, n, d), with ``Y[t] = X[t] W*_t^T + sigma * noise``.
        """
        covariances = None if self.isotropic else self.task_covariances()
        X, Y = families.draw_sample(self.W_star, covariances, self.sigma, n, seed, max_bytes)
        return TaskData(X, Y, family=self)

    def new_task(
        self,
        seed: int | np.random.Generator | None = None,
        U: ArrayLike | None = None,
        Sigma: ArrayLike | None = None,
        k: int | None = None,
    ) -> TaskFamily:
        """An unseen task from the same family: same ``A*``, ``sigma`` and covariance.

        Parameters
        ----------
        seed : int, Generator or None
            Source of the fresh offset ``U*_{T+1}`` with i.i.d. ``N(0, 1)`` entries.
        U : array_like of shape (d, k), optional
            Use this offset factor instead of a random one.
        Sigma : array_like of shape (d, d), optional
            Input covariance of the new task. Default: the family's shared covariance (or the
            identity). Required when the family has one covariance per task, since the new
            task's is then not defined by the family.
        k : int, optional
            Rank of the new task's offset; default: the family's ``k``. Pass it to give the
            new task another rank (a random ``U`` then has ``k`` columns).

        Returns
        -------
        TaskFamily
            A family with ``T = 1``.

        Raises
        ------
        ValueError
            A family with per-task covariances and no ``Sigma``; a ``U`` whose number of
            columns is not ``k`` (the family's rank unless ``k`` is given).

        Examples
        --------
        >>> fam = TaskFamily.random(d=5, k=1, T=3, seed=0)
        >>> fam.new_task(seed=1).k, fam.new_task(seed=1, k=2).k
        (1, 2)
        >>> fam.new_task(U=np.ones((5, 2)))
        Traceback (most recent call last):
        ValueError: U has 2 columns, but the new task's rank is k=1 (the family's); pass U of shape (5, 1), or k=2 to give the new task rank 2.
        """
        if Sigma is None:
            if self.Sigma is not None and self.Sigma.ndim == 3 and self.T > 1:
                raise ValueError(
                    "this family has one input covariance per task, so the new task's is not "
                    "defined: pass Sigma= of shape (d, d) (e.g. Sigma=fam.Sigma[0])."
                )
            Sigma = None if self.Sigma is None else self.task_covariances()[0]
        else:
            Sigma = check_covariance(Sigma, "Sigma", self.d, 1).reshape(self.d, self.d)
        rank = self.k if k is None else check_int(k, "k", maximum=self.d)
        U_new = families.draw_offset(self.d, rank, seed, U, family_k=self.k if k is None else None)
        return TaskFamily(self.A_star, U_new, self.sigma, Sigma)

    # ------------------------------------------------------------------ files
    #: The arrays a family file holds (``Sigma`` only when the covariance is not the identity).
    FILE_KEYS = ("A_star", "U_star", "sigma")

    def save(self, path: str | Path) -> Path:
        """Write the family to ``path`` as an uncompressed ``.npz`` (no pickled objects).

        Parameters
        ----------
        path : str or Path
            The file to write (written as named; ``.npz`` is the convention).

        Returns
        -------
        Path

        Examples
        --------
        >>> import tempfile, pathlib
        >>> fam = TaskFamily.random(d=3, k=1, T=2, seed=0, Sigma=np.diag([1.0, 2.0, 3.0]))
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     back = TaskFamily.load(fam.save(pathlib.Path(tmp) / "fam.npz"))
        >>> bool(np.array_equal(back.U_star, fam.U_star)), back.Sigma.shape
        (True, (3, 3))
        """
        path = Path(path)
        arrays = {"A_star": self.A_star, "U_star": self.U_star, "sigma": np.float64(self.sigma)}
        if self.Sigma is not None:
            arrays["Sigma"] = self.Sigma
        with path.open("wb") as fh:  # a file object: numpy would append ".npz" to a name
            np.savez(fh, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> TaskFamily:
        """Read a family written by :meth:`save`, validated by the constructor.

        Raises
        ------
        FileNotFoundError
            No such file.
        ValueError
            The file is not an ``.npz`` archive, lacks one of :attr:`FILE_KEYS`, holds other
            arrays, or holds arrays the constructor refuses (shapes, finiteness, a covariance
            that is not SPD); the message names the file.
        """
        import zipfile  # only to recognise a file that is not an archive

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file (write one with TaskFamily.save).")
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {key: archive[key] for key in archive.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{path} is not a family file (an .npz written by TaskFamily.save): "
                             f"{exc}") from None
        missing = [key for key in cls.FILE_KEYS if key not in arrays]
        extra = sorted(set(arrays) - {*cls.FILE_KEYS, "Sigma"})
        if missing or extra:
            raise ValueError(f"{path} is not a family file: missing {missing}, unexpected "
                             f"{extra} (expected {list(cls.FILE_KEYS)} and optionally Sigma).")
        try:
            sigma = float(arrays["sigma"])
            return cls(arrays["A_star"], arrays["U_star"], sigma, arrays.get("Sigma"))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path} holds an invalid family: {exc}") from None


@dataclass(frozen=True, eq=False)
class TaskData:
    """A finite sample of every task of a family.

    Parameters
    ----------
    X : array_like of shape (T, n, d)
        Inputs, one row per sample.
    Y : array_like of shape (T, n, d)
        Outputs.
    family : TaskFamily, optional
        The ground truth the sample came from (kept for metrics; solvers never read it).

    Raises
    ------
    ValueError
        Misshapen or non-finite arrays, a family of another (T, d), or data whose second
        moments overflow or underflow double precision (the message says how to rescale).
    TypeError
        A ``family`` that is not a TaskFamily.

    Notes
    -----
    ``X`` and ``Y`` are stored as private read-only copies and shown as read-only views
    (``data.X.flags.writeable = True`` raises ``ValueError``).
    """

    X: NDArray[np.float64]
    Y: NDArray[np.float64]
    family: TaskFamily | None = None

    def __post_init__(self) -> None:
        X = check_array(self.X, "X")
        Y = check_array(self.Y, "Y")
        if X.ndim != 3:
            raise ValueError(f"X must have shape (T, n, d), got {X.shape}.")
        if Y.shape != X.shape:
            raise ValueError(f"Y must have the shape of X {X.shape}, got {Y.shape}.")
        if X.shape[0] < 1 or X.shape[1] < 1:
            raise ValueError(f"X needs at least one task and one sample, got shape {X.shape}.")
        if self.family is not None:
            if not isinstance(self.family, TaskFamily):
                raise TypeError(
                    f"family must be the TaskFamily the sample came from, or None, got "
                    f"{type(self.family).__name__} ({self.family!r:.60})."
                )
            if (self.family.T, self.family.d) != (X.shape[0], X.shape[2]):
                raise ValueError(
                    f"family has (T, d) = ({self.family.T}, {self.family.d}), but X has "
                    f"(T, d) = ({X.shape[0]}, {X.shape[2]}); pass the family the sample came "
                    "from, or family=None."
                )
        check_data_scale(X, "X")
        check_data_scale(Y, "Y")
        object.__setattr__(self, "X", _readonly(X))
        object.__setattr__(self, "Y", _readonly(Y))

    def __reduce__(self):
        # Unpickling goes through the constructor, so a copy is validated and read-only too.
        return (type(self), (self.X, self.Y, self.family))

    def __repr__(self) -> str:
        return summary_repr(type(self).__name__, {
            "T": self.T, "n": self.n, "d": self.d,
            "family": None if self.family is None else self.family})

    @property
    def T(self) -> int:
        """Number of tasks."""
        return self.X.shape[0]

    @property
    def n(self) -> int:
        """Samples per task."""
        return self.X.shape[1]

    @property
    def d(self) -> int:
        """Dimension."""
        return self.X.shape[2]
