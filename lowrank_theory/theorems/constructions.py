"""Points of the LoRA-ML landscape that the checks examine: built in closed form or searched for.

Closed forms (docs/theory.md, sections 6-8): the hyperbolic family of T = 2 minima, the d = 2
counterexample to recovery without column independence, the continuum of minima of collinear
offsets, the T = 1 minima. Searches: global minima reached from random starts, the structured
non-global stationary points of T = 2, spurious local minima for T >= 3.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
from numpy.typing import ArrayLike, NDArray

from lowrank_theory import stationary
from lowrank_theory._validation import as_seed_generator, check_array, check_float, check_int
from lowrank_theory.adapters import SymmetricAdapter
from lowrank_theory.lora_ml import fit_lora_ml, lora_ml_objective
from lowrank_theory.metrics import numerical_rank
from lowrank_theory.retraining import standard_retraining
from lowrank_theory.tasks import TaskFamily

from .result import objective_tolerance, problem_scale

__all__ = [
    "SPURIOUS_CATALOGUE",
    "catalogued_spurious_family",
    "hyperbolic_minimum",
    "hyperbolic_member",
    "hyperbolic_parameter",
    "independence_counterexample",
    "collinear_minimum",
    "t1_minima",
    "global_minima_from_random_starts",
    "structured_stationary_points",
    "find_spurious_minimum",
    "offset_columns_independent",
]

#: A catalogued instance with a spurious local minimum: ``TaskFamily.random(d=3, k=1, T=3,
#: seed=17)``; L-BFGS from the random start of ``numpy.random.default_rng(1)`` (A0, then U0,
#: standard normal) lands on it (so do 9 of the first 12 such starts). Found by the search of
#: :func:`find_spurious_minimum`; the offsets are strongly correlated (|cos| up to 0.87) but
#: linearly independent, so Theorem 3's condition holds.
SPURIOUS_CATALOGUE = {"d": 3, "k": 1, "T": 3, "family_seed": 17, "start_seed": 1}

#: Singular values of ``[U*_1 ... U*_T]`` below this fraction of the largest count as zero when
#: deciding column independence (random offsets sit many orders above it).
INDEPENDENCE_RTOL = 1e-8


def _check_family(family: TaskFamily, name: str = "family") -> TaskFamily:
    if not isinstance(family, TaskFamily):
        raise TypeError(f"{name} must be a TaskFamily (population), got {type(family).__name__}.")
    return family


def offset_columns_independent(family: TaskFamily) -> bool:
    """Theorem 3's condition: the kT columns of ``[U*_1 ... U*_T]`` are linearly independent."""
    cols = np.concatenate(list(family.U_star), axis=1)
    return cols.shape[1] <= family.d and numerical_rank(cols, rtol=INDEPENDENCE_RTOL) == cols.shape[1]


def catalogued_spurious_family() -> TaskFamily:
    """The family of :data:`SPURIOUS_CATALOGUE`.

    Its spurious minimum is reached by
    ``find_spurious_minimum(family, seed=SPURIOUS_CATALOGUE["start_seed"])``.
    """
    cat = SPURIOUS_CATALOGUE
    return TaskFamily.random(d=cat["d"], k=cat["k"], T=cat["T"], seed=cat["family_seed"])


# --------------------------------------------------------------------------- closed forms
def hyperbolic_minimum(
    family: TaskFamily, s: float | ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The T = 2 family of zero-loss minima obtained by hyperbolic rotations (Theorem 4).

    Column by column, ``[v_1j v_2j] = [u_1j u_2j] [[cosh s_j, sinh s_j], [sinh s_j, cosh s_j]]``
    preserves ``u_1j u_1j^T - u_2j u_2j^T`` (the matrix ``diag(1, -1)`` is invariant under
    hyperbolic rotations), so ``V_1 V_1^T - V_2 V_2^T = U*_1 U*_1^T - U*_2 U*_2^T`` and
    ``A^ = A* + U*_1 U*_1^T - V_1 V_1^T``, ``U^_t = V_t`` has zero loss, with ``A^ != A*`` for
    ``s != 0`` and ``rank(A^ - A*) <= 2k`` (docs/theory.md, section 7).

    Parameters
    ----------
    family : TaskFamily with T = 2
    s : float or array_like of shape (k,)
        Rapidities (one per column pair).

    Returns
    -------
    A_hat : ndarray of shape (d, d)
    U_hat : ndarray of shape (2, d, k)

    Examples
    --------
    >>> import numpy as np
    >>> from lowrank_theory import TaskFamily, lora_ml_objective
    >>> fam = TaskFamily.random(d=4, k=1, T=2, seed=0)
    >>> A_hat, U_hat = hyperbolic_minimum(fam, 0.5)
    >>> bool(lora_ml_objective(fam, A_hat, U_hat) < 1e-20), bool(np.linalg.norm(A_hat - fam.A_star) > 0.1)
    (True, True)
    """
    family = _check_family(family)
    if family.T != 2:
        raise ValueError(f"the hyperbolic family needs T = 2 tasks, got T={family.T}.")
    s = np.broadcast_to(check_array(s, "s"), (family.k,))
    U1, U2 = family.U_star
    V1 = U1 * np.cosh(s) + U2 * np.sinh(s)
    V2 = U1 * np.sinh(s) + U2 * np.cosh(s)
    A_hat = family.A_star + U1 @ U1.T - V1 @ V1.T
    return A_hat, np.stack([V1, V2])


def _psd_sqrt(M: NDArray[np.float64]) -> NDArray[np.float64]:
    lam, vec = scipy.linalg.eigh((M + M.T) / 2.0)
    return (vec * np.sqrt(np.clip(lam, 0.0, None))) @ vec.T


def hyperbolic_member(family: TaskFamily, S: ArrayLike) -> NDArray[np.float64]:
    """The base of the T = 2 zero-loss family with boost parameter ``S`` (k x k).

    Every zero-loss point of a T = 2 family with ``[U*_1 U*_2]`` of full column rank has
    ``[V_1 V_2] = [U*_1 U*_2] H`` with ``H`` in the indefinite orthogonal group ``O(k, k)``
    (``H diag(I, -I) H^T = diag(I, -I)``); modulo the rotations of each ``V_t`` ``H`` is the
    boost ``[[P, S], [S^T, Q]]`` with ``P = (I + S S^T)^{1/2}``, ``Q = (I + S^T S)^{1/2}``, so
    the family is ``A(S) = A* + U*_1 U*_1^T - V_1 V_1^T``, ``V_1 = U*_1 P + U*_2 S^T``: k^2
    parameters, and ``S = diag(sinh s)`` gives :func:`hyperbolic_minimum` (docs/theory.md 7.1).

    Parameters
    ----------
    family : TaskFamily with T = 2
    S : array_like of shape (k, k)

    Returns
    -------
    ndarray of shape (d, d)

    Examples
    --------
    >>> import numpy as np
    >>> from lowrank_theory import TaskFamily
    >>> fam = TaskFamily.random(d=5, k=1, T=2, seed=0)
    >>> A, _ = hyperbolic_minimum(fam, 0.3)
    >>> bool(np.allclose(hyperbolic_member(fam, [[np.sinh(0.3)]]), A))
    True
    """
    family = _check_family(family)
    if family.T != 2:
        raise ValueError(f"the hyperbolic family needs T = 2 tasks, got T={family.T}.")
    S = check_array(S, "S", (family.k, family.k))
    U1, U2 = family.U_star
    V1 = U1 @ _psd_sqrt(np.eye(family.k) + S @ S.T) + U2 @ S.T
    return family.A_star + U1 @ U1.T - V1 @ V1.T


def hyperbolic_parameter(
    family: TaskFamily, A: ArrayLike
) -> tuple[NDArray[np.float64], float]:
    """Which member of the T = 2 zero-loss family a base is: its boost ``S`` and the misfit.

    In the coordinates of ``C = [U*_1 U*_2]`` a member has
    ``C^+ (A(S) - A*) C^+T = [[-S S^T, -P S], [-S^T P, -S^T S]]`` (:func:`hyperbolic_member`),
    so ``S = -(I - X_11)^{-1/2} X_12`` with ``X = C^+ (A - A*) C^+T``. The misfit
    ``|A - A(S)|_F / scale`` is zero for a member and positive otherwise.

    Parameters
    ----------
    family : TaskFamily with T = 2, ``2k <= d``
    A : array_like of shape (d, d)

    Returns
    -------
    S : ndarray of shape (k, k)
        Its singular values are ``sinh`` of the rapidities.
    misfit : float
        ``|A - A(S)|_F / scale`` (:func:`~lowrank_theory.theorems.result.problem_scale`).

    Examples
    --------
    >>> from lowrank_theory import TaskFamily
    >>> fam = TaskFamily.random(d=5, k=1, T=2, seed=0)
    >>> S, misfit = hyperbolic_parameter(fam, hyperbolic_minimum(fam, -0.4)[0])
    >>> round(float(np.arcsinh(S[0, 0])), 12), misfit < 1e-14
    (-0.4, True)
    """
    family = _check_family(family)
    if family.T != 2 or 2 * family.k > family.d:
        raise ValueError(f"the family's parametrisation needs T = 2 and 2k <= d, got "
                         f"T={family.T}, k={family.k}, d={family.d}.")
    A = check_array(A, "A", (family.d, family.d))
    k = family.k
    C = np.concatenate(list(family.U_star), axis=1)
    Cp = np.linalg.pinv(C)
    X = Cp @ (A - family.A_star) @ Cp.T
    X = (X + X.T) / 2.0
    P = _psd_sqrt(np.eye(k) - X[:k, :k])
    S = -scipy.linalg.solve(P, X[:k, k:], assume_a="pos")
    member = hyperbolic_member(family, S)
    return S, float(np.linalg.norm(A - member)) / problem_scale(family)


def independence_counterexample(
    r: float = 0.5, A_star: ArrayLike | None = None
) -> tuple[TaskFamily, NDArray[np.float64], NDArray[np.float64]]:
    """A T = 3 family without column independence and a zero-loss minimum with ``A^ != A*``.

    ``d = 2, k = 1``: ``u_1 = e_1``, ``u_2 = e_2``, ``u_3 = r (e_1 + e_2) / sqrt(2)``. The three
    rank-one offsets are linearly independent *as matrices* (they span the symmetric 2 x 2
    matrices), but three vectors in R^2 are not. Let ``X`` solve ``u_t^T X u_t = 1`` for all t
    (three linear equations in the three entries of a symmetric X) and ``C = X^{-1}``. When
    ``X`` is indefinite (here iff ``r^2 < 1/2``), ``u_t u_t^T - C`` is PSD of rank one for
    every t (matrix determinant lemma and eigenvalue interlacing), so
    ``A^ = A* + C``, ``U^_t U^_t^T = u_t u_t^T - C`` has zero loss while ``A^ != A*``
    (docs/theory.md, section 6.2).

    Parameters
    ----------
    r : float, default=0.5
        Length of ``u_3``; must satisfy ``0 < r < 1/sqrt(2)``.
    A_star : array_like of shape (2, 2), optional
        The base (default: ``[[1, 0.5], [0.5, -1]]``).

    Returns
    -------
    family : TaskFamily
    A_hat : ndarray of shape (2, 2)
    U_hat : ndarray of shape (3, 2, 1)
    """
    r = check_float(r, "r", strict=True)
    if r * r >= 0.5:
        raise ValueError(f"r must satisfy r < 1/sqrt(2) for an indefinite X, got r={r}.")
    if A_star is None:
        A_star = np.array([[1.0, 0.5], [0.5, -1.0]])
    A_star = check_array(A_star, "A_star", (2, 2))
    u = np.array([[1.0, 0.0], [0.0, 1.0], [r / np.sqrt(2), r / np.sqrt(2)]])
    # u^T X u = x11 u1^2 + 2 x12 u1 u2 + x22 u2^2 = 1 for each of the three vectors.
    design = np.stack([u[:, 0] ** 2, 2 * u[:, 0] * u[:, 1], u[:, 1] ** 2], axis=1)
    x11, x12, x22 = scipy.linalg.solve(design, np.ones(3))
    C = np.linalg.inv(np.array([[x11, x12], [x12, x22]]))
    family = TaskFamily(A_star, u[:, :, None], sigma=0.1)
    P = family.offsets - C
    # Each P_t is PSD of rank 1 (that is what C is for): its best PSD rank-1 factor is exact.
    (U_hat,) = SymmetricAdapter(1).project(P)
    return family, A_star + C, U_hat


def collinear_minimum(
    family: TaskFamily, fraction: float = 0.5
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """A zero-loss minimum ``A^ = A* + a q q^T != A*`` of a family of collinear rank-1 offsets.

    When every offset is ``c_t q q^T`` (``|q| = 1``), any ``a < min_t c_t`` keeps each residual
    ``(c_t - a) q q^T`` PSD of rank one, so ``A^ = A* + a q q^T`` with
    ``U^_t = sqrt(c_t - a) q`` has zero loss: a continuum of global minima.

    Parameters
    ----------
    family : TaskFamily
        ``k = 1`` and all offsets along one direction (``TaskFamily.collinear(d, 1, T)``).
    fraction : float, default=0.5
        ``a = fraction * min_t c_t``, in ``(0, 1)``.

    Returns
    -------
    A_hat : ndarray of shape (d, d)
    U_hat : ndarray of shape (T, d, 1)
    """
    family = _check_family(family)
    fraction = check_float(fraction, "fraction", strict=True)
    if family.k != 1 or fraction >= 1.0:
        raise ValueError(f"needs k = 1 and 0 < fraction < 1, got k={family.k}, fraction={fraction}.")
    u = family.U_star[:, :, 0]
    q = u[0] / np.linalg.norm(u[0])
    if not np.allclose(np.abs(u @ q), np.linalg.norm(u, axis=1), rtol=1e-10):
        raise ValueError("the offsets of family must all lie along one direction (collinear).")
    c = (u @ q) ** 2
    a = fraction * float(c.min())
    U_hat = (np.sqrt(c - a)[:, None] * q)[:, :, None]
    return family.A_star + a * np.outer(q, q), U_hat


def t1_minima(
    family: TaskFamily, n: int, seed: int | np.random.Generator | None = 0
) -> list[tuple[NDArray[np.float64], NDArray[np.float64]]]:
    """``n`` random global minima of a T = 1 family: ``A = W*_1 - V V^T``, ``V`` Gaussian (d, k)."""
    family = _check_family(family)
    if family.T != 1:
        raise ValueError(f"these minima are the T = 1 ones, got T={family.T}.")
    n = check_int(n, "n")
    rng = as_seed_generator(seed)
    out = []
    for _ in range(n):
        V = rng.standard_normal((1, family.d, family.k))
        out.append((family.W_star[0] - V[0] @ V[0].T, V))
    return out


# --------------------------------------------------------------------------- searches
def global_minima_from_random_starts(
    family: TaskFamily,
    rank: int,
    n_starts: int,
    seed: int | np.random.Generator | None = 0,
    *,
    max_iter: int = 3000,
) -> tuple[list[tuple[NDArray[np.float64], NDArray[np.float64]]], int]:
    """Global minima of the population LoRA-ML objective reached from random starts.

    Each start draws ``A0`` and ``U0`` with i.i.d. ``N(0, 1)`` entries, runs L-BFGS
    (``fit_lora_ml(method="lbfgs")``) and polishes the answer with Newton steps; answers whose
    objective is within the global-value tolerance (the population minimum is 0) are kept.

    Parameters
    ----------
    family : TaskFamily
    rank : int
        Adapter rank.
    n_starts : int
    seed : int, Generator or None
    max_iter : int, default=3000

    Returns
    -------
    minima : list of (A, U)
    n_other : int
        Starts that ended elsewhere (a spurious local minimum or a stall).
    """
    family = _check_family(family)
    rng = as_seed_generator(seed)
    d, T = family.d, family.T
    tol = objective_tolerance(family)
    minima, other = [], 0
    for _ in range(n_starts):
        A0 = rng.standard_normal((d, d))
        U0 = rng.standard_normal((T, d, rank))
        fit = fit_lora_ml(family, rank, method="lbfgs", A0=A0, U0=U0, max_iter=max_iter)
        A, fac, _ = stationary.polish_stationary_point(family, fit.A, fit.U)
        if lora_ml_objective(family, A, fac[0]) <= tol:
            minima.append((A, fac[0]))
        else:
            other += 1
    return minima, other


def structured_stationary_points(
    family: TaskFamily, rank: int, seed: int | np.random.Generator | None = 0
) -> list[tuple[NDArray[np.float64], NDArray[np.float64]]]:
    """Non-global stationary points known in closed form or by a restricted minimisation.

    ``(A_SR, 0)``; and, per task s, ``U_s = 0`` with the other tasks' adapters and the base
    minimised (a zero factor stays zero under any gradient method, so L-BFGS from a start with
    ``U_s = 0`` stays on that face).

    Returns
    -------
    list of (A, U)
        ``T + 1`` points, each polished by Newton steps.
    """
    family = _check_family(family)
    rng = as_seed_generator(seed)
    d, T = family.d, family.T
    points = [(standard_retraining(family), np.zeros((T, d, rank)))]
    for s in range(T):
        U0 = rng.standard_normal((T, d, rank))
        U0[s] = 0.0
        A0 = rng.standard_normal((d, d))
        fit = fit_lora_ml(family, rank, method="lbfgs", A0=A0, U0=U0, max_iter=3000)
        A, fac, _ = stationary.polish_stationary_point(family, fit.A, fit.U)
        points.append((A, fac[0]))
    return points


def find_spurious_minimum(
    family: TaskFamily,
    rank: int | None = None,
    n_starts: int = 10,
    seed: int | np.random.Generator | None = 0,
) -> tuple[NDArray[np.float64], NDArray[np.float64]] | None:
    """Search for a spurious local minimum of the population objective from random starts.

    Each start draws ``A0`` then ``U0`` (standard normal) from ``seed``'s generator, runs
    L-BFGS, Newton-polishes, and certifies; the first point certified a spurious local minimum
    is returned.

    Returns
    -------
    (A, U) or None
    """
    family = _check_family(family)
    rank = family.k if rank is None else check_int(rank, "rank", maximum=family.d)
    rng = as_seed_generator(seed)
    d, T = family.d, family.T
    tol = objective_tolerance(family)
    for _ in range(n_starts):
        A0 = rng.standard_normal((d, d))
        U0 = rng.standard_normal((T, d, rank))
        fit = fit_lora_ml(family, rank, method="lbfgs", A0=A0, U0=U0, max_iter=3000)
        if fit.objective <= tol:
            continue
        A, fac, _ = stationary.polish_stationary_point(family, fit.A, fit.U)
        cert = stationary.certify_stationary_point(family, A, fac[0])
        if cert.kind == "spurious local minimum":
            return A, fac[0]
    return None
