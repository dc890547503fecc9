"""The ``atlas`` experiment: spurious minima and the paper protocol's convergence over (d, k, T).

One cell of the atlas is one shape (``AtlasConfig``: d, k, T); each seed draws one random
population family (``TaskFamily.random``, Sigma = I) and gives one row of the table:

- **spurious minimum**: whether a certified spurious local minimum was found. The search is the
  one of the ``spurious-minima`` check, :func:`lowrank_theory.theorems.find_spurious_minimum`
  (``search_starts`` L-BFGS starts from ``A0``, ``U0`` with i.i.d. ``N(0, 1)`` entries, each
  ending point Newton-polished and certified by
  :func:`lowrank_theory.stationary.certify_stationary_point`), and the end point of the
  family's paper-protocol run when it has not reached ``A*`` (Newton-polished, certified).
  "Not found" is not "none exists": the search has this budget and no more.
- **paper protocol**: one run of the authors' block-coordinate descent on the population
  statistics (:func:`lowrank_theory.paper_protocol.run_paper_protocol`: ``A0 = 0``,
  ``U0 ~ N(0, 0.1^2)``, 10 steps of 0.003 on every ``U_t`` then one step of 0.03 on ``A`` per
  round, in the authors' loss convention) for at most ``rounds`` rounds; the first round after
  which ``||A - A*||_F / ||A*||_F < RECOVERED`` (1e-6) is recorded, and the run stops there.

Table (one row per seed): ``offsets_independent`` (Theorem 3's condition on the kT offset
columns), ``spurious`` (found by either source), ``spurious_search`` (found by the L-BFGS
search), ``spurious_objective`` and ``spurious_curvature`` (F and lambda_min(H)/|H| modulo
the symmetry at the minimum found, NaN if none), ``protocol_reached``, ``protocol_rounds``
(rounds to the tolerance, NaN if not reached), ``protocol_base_error`` (relative error after
the last round run), ``protocol_end`` (what the run's end is, :data:`PROTOCOL_ENDS`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from lowrank_theory.simulations.configs import RECOVERED, AtlasConfig
from lowrank_theory.simulations.streams import stream_seeds
from numpy.typing import NDArray

from lowrank_theory import stationary
from lowrank_theory.adapters import SymmetricAdapter
from lowrank_theory.losses import Statistics, statistics
from lowrank_theory.metrics import base_error
from lowrank_theory.paper_protocol import PAPER_INIT_SCALE, run_paper_protocol
from lowrank_theory.tasks import TaskFamily
from lowrank_theory.theorems import find_spurious_minimum, offset_columns_independent

__all__ = [
    "CHECK_EVERY",
    "COLUMNS",
    "PROTOCOL_ENDS",
    "ProtocolTrace",
    "paper_start",
    "protocol_rounds_to_tolerance",
    "protocol_end",
    "atlas_rows",
    "run_atlas",
]

#: Rounds between two checks of the base error. A run whose error is below the tolerance at a
#: check is replayed from the previous check one round at a time, so the round recorded is the
#: first one below it (the protocol is deterministic: the replay repeats the same iterates).
CHECK_EVERY = 10
#: What a paper-protocol run's end is: ``"reached A*"`` within the budget; otherwise the end
#: point is Newton-polished and certified: ``"converging to A*"`` (a global minimum at ``A*``:
#: the run was slow), ``"zero loss elsewhere"`` (a global minimum with ``A != A*``),
#: ``"spurious local minimum"``, ``"strict saddle"``, ``"degenerate"``, ``"not stationary"``
#: (Newton found no stationary point near it); or ``"diverged"``.
PROTOCOL_ENDS: tuple[str, ...] = (
    "reached A*", "converging to A*", "zero loss elsewhere", "spurious local minimum",
    "strict saddle", "degenerate", "not stationary", "diverged",
)
#: Columns of the table, in order (the runner adds the key and config columns in front).
COLUMNS: tuple[str, ...] = (
    "seed", "offsets_independent", "spurious", "spurious_search", "spurious_objective",
    "spurious_curvature", "protocol_reached", "protocol_rounds", "protocol_base_error",
    "protocol_end",
)
#: The certificate's kind that counts.
SPURIOUS = "spurious local minimum"
#: Random streams of one seed: the family, the search's starts, the protocol's start.
STREAMS: tuple[str, ...] = ("family", "search", "protocol")


def _stack(per_run: Sequence[Statistics]) -> Statistics:
    """Population statistics of several families on a new leading (batch) axis."""
    first = per_run[0]
    return Statistics(
        *(np.stack([getattr(s, f) for s in per_run]) for f in ("Sxx", "Sxy", "syy")),
        offset=first.offset, population=True,
        W_star=np.stack([s.W_star for s in per_run]), identity_inputs=first.identity_inputs,
    )


def _take(stats: Statistics, idx: NDArray[np.intp]) -> Statistics:
    """The runs ``idx`` of a batch of statistics (the batch axis kept)."""
    return Statistics(stats.Sxx[idx], stats.Sxy[idx], stats.syy[idx], stats.offset,
                      stats.population, stats.W_star[idx], stats.identity_inputs)


def _relative_errors(A: NDArray[np.float64], A_star: NDArray[np.float64]) -> NDArray[np.float64]:
    """``base_error(A_i, A*_i, relative=True)`` for every run ``i`` of a batch (..., d, d)."""
    return np.linalg.norm(A - A_star, axis=(-2, -1)) / np.linalg.norm(A_star, axis=(-2, -1))


def paper_start(family: TaskFamily, seed: int) -> NDArray[np.float64]:
    """The paper's start of the adapters, ``U0`` of shape (T, d, k) with ``N(0, 0.1^2)`` entries.

    The same draw as ``fit_lora_ml(family, k, method="paper", seed=seed)`` makes (``A0 = 0``).

    Examples
    --------
    >>> from lowrank_theory import TaskFamily
    >>> paper_start(TaskFamily.random(d=4, k=2, T=3, seed=0), seed=1).shape
    (3, 4, 2)
    """
    (U0,) = SymmetricAdapter(family.k).init_factors(family.T, family.d,
                                                     np.random.default_rng(seed), PAPER_INIT_SCALE)
    return U0


@dataclass(frozen=True, eq=False)
class ProtocolTrace:
    """Where batched paper-protocol runs stopped: at the tolerance, at the budget, or diverged.

    Attributes
    ----------
    A : ndarray of shape (B, d, d)
        Base after the last round run.
    U : ndarray of shape (B, T, d, k)
        Adapter factors after the last round run.
    rounds : ndarray of int, shape (B,)
        Rounds run: the first round after which the relative base error is below the
        tolerance, else the budget (or the round in which the run diverged).
    reached : ndarray of bool, shape (B,)
        Whether the error fell below the tolerance within the budget.
    base_error : ndarray of shape (B,)
        ``||A - A*||_F / ||A*||_F`` after the last round run (inf if diverged).
    diverged : ndarray of bool, shape (B,)
    """

    A: NDArray[np.float64]
    U: NDArray[np.float64]
    rounds: NDArray[np.int64]
    reached: NDArray[np.bool_]
    base_error: NDArray[np.float64]
    diverged: NDArray[np.bool_]


def protocol_rounds_to_tolerance(
    families: Sequence[TaskFamily], U0: NDArray[np.float64], rounds: int,
    tol: float = RECOVERED, check_every: int = CHECK_EVERY,
) -> ProtocolTrace:
    """Run the paper protocol on population families until ``A*`` is reached or the budget ends.

    All runs advance together through :func:`~lowrank_theory.paper_protocol.run_paper_protocol`
    (the authors' step sizes and convention, ``A0 = 0``), ``check_every`` rounds at a time;
    a run leaves the batch at the first round after which
    ``||A - A*||_F / ||A*||_F < tol``, located by replaying its last ``check_every`` rounds one
    at a time. A chunk in which the batch diverges is replayed run by run, so one diverging run
    does not stop the others. Each run's iterates are those of
    ``fit_lora_ml(family, k, method="paper", U0=..., max_iter=r)``: the protocol treats the runs
    of a batch independently, to the bit.

    Parameters
    ----------
    families : sequence of TaskFamily
        Population families of one shape (d, k, T).
    U0 : ndarray of shape (len(families), T, d, k)
        Starting factors (:func:`paper_start`).
    rounds : int
        Round budget.
    tol : float, default=RECOVERED
        Relative base error that counts as ``A*``.
    check_every : int, default=CHECK_EVERY

    Returns
    -------
    ProtocolTrace

    Examples
    --------
    >>> from lowrank_theory import TaskFamily
    >>> fams = [TaskFamily.random(d=20, k=1, T=5, seed=s) for s in (0, 1)]
    >>> U0 = np.stack([paper_start(f, seed=s) for s, f in enumerate(fams)])
    >>> trace = protocol_rounds_to_tolerance(fams, U0, rounds=3000)
    >>> trace.reached.tolist(), bool(np.all(trace.base_error < 1e-6))
    ([True, True], True)
    >>> bool(np.all((500 < trace.rounds) & (trace.rounds < 1000)))
    True
    """
    if not families:
        raise ValueError("families is empty: give at least one TaskFamily.")
    d, k, T = families[0].d, families[0].k, families[0].T
    if any((f.d, f.k, f.T) != (d, k, T) for f in families):
        raise ValueError("families must share (d, k, T) to run as one batch.")
    U0 = np.asarray(U0, dtype=np.float64)
    if U0.shape != (len(families), T, d, k):
        raise ValueError(f"U0 must have shape {(len(families), T, d, k)}, got {U0.shape}.")
    stats = _stack([statistics(f) for f in families])
    A_star = np.stack([f.A_star for f in families])
    adapter = SymmetricAdapter(k)
    n = len(families)
    A, U = np.zeros((n, d, d)), U0.copy()
    done = np.zeros(n, dtype=np.int64)
    reached = np.zeros(n, dtype=bool)
    diverged = np.zeros(n, dtype=bool)

    def advance(idx: NDArray[np.intp], r: int):
        run = run_paper_protocol(_take(stats, idx), adapter, A[idx], (U[idx],), rounds=r)
        return run.A, run.factors[0], run.rounds_done, run.diverged

    active = np.arange(n)
    elapsed = 0
    while active.size and elapsed < rounds:
        r = min(check_every, rounds - elapsed)
        A_new, U_new, _, blew_up = advance(active, r)
        if blew_up:
            keep = []
            for j, i in enumerate(active):
                A_i, U_i, done_i, div_i = advance(np.array([i]), r)
                A_new[j], U_new[j] = A_i[0], U_i[0]
                if div_i:
                    A[i], U[i], done[i], diverged[i] = A_i[0], U_i[0], elapsed + done_i, True
                else:
                    keep.append(j)
            active, A_new, U_new = active[keep], A_new[keep], U_new[keep]
        crossed = _relative_errors(A_new, A_star[active]) < tol
        for i in active[crossed]:
            for step in range(1, r + 1):
                A_i, U_i, _, _ = advance(np.array([i]), 1)
                A[i], U[i], done[i] = A_i[0], U_i[0], elapsed + step
                if _relative_errors(A[i], A_star[i]) < tol:
                    break
            reached[i] = True
        moving = active[~crossed]
        A[moving], U[moving] = A_new[~crossed], U_new[~crossed]
        elapsed += r
        done[moving] = elapsed
        active = moving
    with np.errstate(invalid="ignore", over="ignore"):
        errors = np.where(diverged, np.inf, _relative_errors(A, A_star))
    return ProtocolTrace(A, U, done, reached, errors, diverged)


def protocol_end(family: TaskFamily, A: NDArray[np.float64], U: NDArray[np.float64]
                 ) -> tuple[str, stationary.StationaryPointCertificate | None]:
    """What a paper-protocol run that has not reached ``A*`` ended at (:data:`PROTOCOL_ENDS`).

    The end point is Newton-polished (:func:`~lowrank_theory.stationary.polish_stationary_point`)
    and certified (:func:`~lowrank_theory.stationary.certify_stationary_point`); a global
    minimum is split by its base error into ``"converging to A*"`` and
    ``"zero loss elsewhere"``.

    Returns
    -------
    kind : str
    certificate : StationaryPointCertificate or None
        None for a diverged run.
    """
    if not (np.all(np.isfinite(A)) and np.all(np.isfinite(U))):
        return "diverged", None
    A_p, factors, _ = stationary.polish_stationary_point(family, A, U)
    cert = stationary.certify_stationary_point(family, A_p, factors[0])
    if cert.kind == "global minimum":
        at_truth = base_error(A_p, family.A_star, relative=True) < RECOVERED
        return ("converging to A*" if at_truth else "zero loss elsewhere"), cert
    return cert.kind, cert


def _curvature(cert: stationary.StationaryPointCertificate) -> float:
    """``lambda_min(H) / |H|`` modulo the symmetry: the certificate's margin, unit-free."""
    return cert.min_eigenvalue_modulo_symmetry / cert.hessian_norm


def atlas_rows(
    families: Sequence[TaskFamily], search_seeds: Sequence[int], protocol_seeds: Sequence[int],
    *, search_starts: int, rounds: int,
) -> pd.DataFrame:
    """The atlas's measurements on given families (one row each, without the ``seed`` column).

    Parameters
    ----------
    families : sequence of TaskFamily
        Population families of one shape.
    search_seeds : sequence of int
        Seed of each family's spurious-minimum search (``find_spurious_minimum``'s ``seed``).
    protocol_seeds : sequence of int
        Seed of each family's paper start (:func:`paper_start`).
    search_starts : int
        L-BFGS starts of each search.
    rounds : int
        Round budget of the paper protocol.

    Returns
    -------
    DataFrame
        The columns of :data:`COLUMNS` but ``seed``, one row per family, in order.

    Examples
    --------
    >>> from lowrank_theory.theorems import SPURIOUS_CATALOGUE, catalogued_spurious_family
    >>> rows = atlas_rows([catalogued_spurious_family()], [SPURIOUS_CATALOGUE["start_seed"]],
    ...                   [0], search_starts=1, rounds=10)
    >>> bool(rows["spurious"][0]), bool(rows["spurious_search"][0]), bool(rows["protocol_reached"][0])
    (True, True, False)
    """
    if not (len(families) == len(search_seeds) == len(protocol_seeds)):
        raise ValueError("families, search_seeds and protocol_seeds must have one entry each.")
    U0 = np.stack([paper_start(f, s) for f, s in zip(families, protocol_seeds)])
    trace = protocol_rounds_to_tolerance(families, U0, rounds)
    rows = []
    for i, (family, search_seed) in enumerate(zip(families, search_seeds)):
        point = find_spurious_minimum(family, family.k, n_starts=search_starts, seed=search_seed)
        # The point is certified again here, so the count rests on the certificate itself.
        cert = None if point is None else stationary.certify_stationary_point(family, *point)
        found = cert is not None and cert.kind == SPURIOUS
        end, end_cert = "reached A*", None
        if not trace.reached[i]:
            end, end_cert = protocol_end(family, trace.A[i], trace.U[i])
        if not found:
            cert = end_cert if end == SPURIOUS else None
        rows.append({
            "offsets_independent": offset_columns_independent(family),
            "spurious": cert is not None,
            "spurious_search": found,
            "spurious_objective": np.nan if cert is None else cert.objective,
            "spurious_curvature": np.nan if cert is None else _curvature(cert),
            "protocol_reached": bool(trace.reached[i]),
            "protocol_rounds": float(trace.rounds[i]) if trace.reached[i] else np.nan,
            "protocol_base_error": float(trace.base_error[i]),
            "protocol_end": end,
        })
    return pd.DataFrame(rows, columns=list(COLUMNS[1:]))


def run_atlas(config: AtlasConfig, seeds: tuple[int, ...]) -> pd.DataFrame:
    """One atlas cell: a random population family per seed, searched and run (module notes).

    Each seed is split into the streams ``family``, ``search`` and ``protocol``
    (:func:`~lowrank_theory.simulations.streams.stream_seeds`); the protocol runs of all the
    seeds advance as one batch.
    """
    streams = [stream_seeds(seed, STREAMS) for seed in seeds]
    families = [TaskFamily.random(config.d, config.k, config.T, seed=st["family"])
                for st in streams]
    rows = atlas_rows(families, [st["search"] for st in streams],
                      [st["protocol"] for st in streams],
                      search_starts=config.search_starts, rounds=config.rounds)
    rows.insert(0, "seed", list(seeds))
    return rows
