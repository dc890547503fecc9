"""Input validation shared by the public functions (validate once, at the boundary).

The one home of the validators: the library's functions and the experiment configs of
``lowrank_theory.simulations`` alike call these, with the value first and its name second.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg
from numpy.typing import ArrayLike, NDArray

#: Relative tolerance below which a covariance eigenvalue counts as zero (singular). Sample
#: covariances of well-posed problems sit many orders of magnitude above it.
COVARIANCE_RTOL = 1e-10
#: Relative tolerance for the symmetry of a covariance matrix (round-off of a product X^T X).
SYMMETRY_RTOL = 1e-8
#: Largest sum of squares a problem's inputs may lead to: second moments and losses add up
#: squares of entries over samples, dimensions and tasks, and the solvers form a few products
#: of them. 1e290 leaves a factor 1e18 below double precision's largest number (1.8e308).
SQUARE_MAX = 1e290
#: Smallest mean square of data entries: below it the second moments leave double precision's
#: normal range (2.2e-308) with no room for the products the solvers form, and lose digits.
SQUARE_MIN = 1e-290


def as_seed_generator(
    seed: int | np.random.Generator | None, name: str = "seed"
) -> np.random.Generator:
    """Return a ``numpy.random.Generator`` from an int, a Generator or None (fresh entropy)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)):
        if seed is not None and seed < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {seed}.")
        return np.random.default_rng(seed)
    raise TypeError(
        f"{name} must be an int, a numpy.random.Generator or None, got {type(seed).__name__}."
    )


def check_int(value: Any, name: str, minimum: int | None = 1, maximum: int | None = None) -> int:
    """Return ``value`` as int after checking its type and range (None: no bound)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} ({value!r}).")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}.")
    return value


def check_bool(value: Any, name: str) -> bool:
    """Return ``value`` after checking it is ``True`` or ``False`` (not 0, 1 or a string)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} ({value!r}).")
    return bool(value)


def check_int_tuple(value: Any, name: str, minimum: int | None = 1) -> tuple[int, ...]:
    """Return ``value`` after checking it is a non-empty, strictly increasing tuple of ints.

    Each item is checked by :func:`check_int` under the name ``name[i]``.
    """
    if not isinstance(value, tuple) or not value:
        raise TypeError(f"{name} must be a non-empty tuple of ints, got {value!r}.")
    items = tuple(check_int(item, f"{name}[{i}]", minimum) for i, item in enumerate(value))
    if any(b <= a for a, b in zip(items, items[1:])):
        raise ValueError(f"{name} must be strictly increasing, got {value}.")
    return items


def check_float(value: Any, name: str, minimum: float | None = 0.0, strict: bool = False) -> float:
    """Return ``value`` as a finite float, checking it is >= (or > if strict) ``minimum``.

    ``minimum=None`` checks finiteness only.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} ({value!r}).")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}.")
    if minimum is not None and (value < minimum or (strict and value == minimum)):
        op = ">" if strict else ">="
        raise ValueError(f"{name} must be {op} {minimum}, got {value}.")
    return value


def check_array(
    value: ArrayLike, name: str, shape: tuple[int | None, ...] | None = None
) -> NDArray[np.float64]:
    """Return ``value`` as a finite float64 array of the given shape (None = any size)."""
    if np.iscomplexobj(value):
        # numpy would drop the imaginary part with only a warning: refuse instead.
        raise TypeError(
            f"{name} must be real, got a complex array; pass its real part (.real) if the "
            "imaginary part is round-off."
        )
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a real numeric array: {exc}") from None
    if shape is not None:
        ok = arr.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, arr.shape))
        if not ok:
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            raise ValueError(f"{name} must have shape {want}, got {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf; pass finite values.")
    return arr


def check_squares(magnitude: float, count: float, name: str, what: str = "the losses", *,
                  entries_of: str | None = None) -> None:
    """Refuse a value whose squares, summed ``count`` times, overflow (see :data:`SQUARE_MAX`).

    Parameters
    ----------
    magnitude : float
        The size of the value: a scalar argument, or the largest entry of an array's.
    count : float
        How many such squares ``what`` adds up.
    name : str
        The argument, for the message.
    what : str, default="the losses"
        What adds the squares up, for the message.
    entries_of : str, optional
        For an array: which entries ``magnitude`` measures (e.g. "its entries"); the message
        then bounds them instead of the argument.
    """
    with np.errstate(over="ignore"):
        total = np.float64(magnitude) ** 2 * count
    if total <= SQUARE_MAX:
        return
    bound = np.sqrt(SQUARE_MAX / count)
    if entries_of is None:
        lead, fix = f"{name}={magnitude:.3g} overflows", f"use {name} <= {bound:.3g}"
    else:
        lead = f"{name}: {entries_of} up to {magnitude:.3g} overflow"
        fix = f"keep {entries_of} below {bound:.3g}"
    raise ValueError(
        f"{lead}: {what} add up such squares {count:.3g} times, past {SQUARE_MAX:.0e} "
        f"(double precision ends at 1.8e308); {fix}, or rescale the problem."
    )


def check_data_scale(arr: NDArray[np.float64], name: str) -> None:
    """Refuse data whose second moments overflow or underflow double precision.

    The sum of squares of all entries must stay below :data:`SQUARE_MAX` and, unless the data
    are zero, their mean square above :data:`SQUARE_MIN`.
    """
    top = float(np.max(np.abs(arr), initial=0.0))
    if top == 0.0:
        return
    # BLAS's nrm2 (scipy.linalg.norm of a vector) scales as it sums: no overflow or underflow.
    mean_square = (scipy.linalg.norm(arr.ravel()) / top) ** 2 / arr.size * top**2
    if top**2 * arr.size > SQUARE_MAX:
        raise ValueError(
            f"{name}: data scaled to ~{top:.0e} overflow the second moments (the sum of squares "
            f"of its entries passes {SQUARE_MAX:.0e}); rescale the data, e.g. divide {name} by "
            f"{top:.0e}."
        )
    if mean_square < SQUARE_MIN:
        raise ValueError(
            f"{name}: rescale the data (its scale ~{np.sqrt(mean_square):.0e} underflows: the mean "
            f"square of its entries is below {SQUARE_MIN:.0e}, where double precision loses "
            f"digits); multiply {name} by about {1 / np.sqrt(mean_square):.0e}."
        )


def check_covariance(value: ArrayLike, name: str, d: int, T: int) -> NDArray[np.float64]:
    """Check a symmetric positive definite covariance of shape (d, d) or (T, d, d)."""
    arr = check_array(value, name)
    if arr.shape not in ((d, d), (T, d, d)):
        raise ValueError(f"{name} must have shape ({d}, {d}) or ({T}, {d}, {d}), got {arr.shape}.")
    scale = max(float(np.max(np.abs(arr))), np.finfo(float).tiny)
    if not SQUARE_MIN <= scale <= SQUARE_MAX / (d * T):
        flow = "underflows" if scale < SQUARE_MIN else "overflows the second moments"
        raise ValueError(
            f"{name}: rescale the covariance (its scale ~{scale:.0e} {flow}; entries between "
            f"{SQUARE_MIN:.0e} and {SQUARE_MAX / (d * T):.0e} keep double precision)."
        )
    if not np.allclose(arr, np.swapaxes(arr, -1, -2), rtol=0.0, atol=SYMMETRY_RTOL * scale):
        raise ValueError(f"{name} must be symmetric; symmetrise it with (S + S.T) / 2.")
    eig = np.linalg.eigvalsh(arr)
    if np.any(eig <= COVARIANCE_RTOL * scale):
        raise ValueError(
            f"{name} must be positive definite (smallest eigenvalue {eig.min():.3g}); "
            "a singular or indefinite covariance leaves the regression unidentified."
        )
    return arr


#: Largest allocation, in bytes, that the constructors of :mod:`lowrank_theory.tasks` make
#: without being asked (2 GiB): well above every documented experiment (d = 2000, T = 40 needs
#: about 0.1 GB) and below the memory of a laptop, so that a typo such as ``d=20000`` fails at
#: once with a clear message instead of swapping. Pass ``max_bytes=None`` to lift it.
MAX_BYTES = 2 * 2**30


def check_allocation(n_bytes: float, what: str, max_bytes: int | None) -> None:
    """Refuse an allocation of ``n_bytes`` above ``max_bytes`` (None: no limit)."""
    if max_bytes is None:
        return
    max_bytes = check_int(max_bytes, "max_bytes", minimum=0)
    if n_bytes > max_bytes:
        raise ValueError(
            f"{what} would allocate about {n_bytes / 2**30:.3g} GiB, above max_bytes="
            f"{max_bytes / 2**30:.3g} GiB; pass max_bytes=None (or a larger limit) if the "
            "machine has the memory."
        )


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    """Return ``value`` after checking it is one of the strings ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}.")
    return value
