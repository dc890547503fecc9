"""Finite samples end to end: the fine-tuning rate and retraining followed by fine-tuning.

- :func:`expected_rrr_excess`: the expected excess loss of rank-k reduced-rank regression on
  ``n`` samples from a base at ``A*``, derived in docs/theory.md (section 10);
- :func:`check_ft_rate`: fine-tuning from ``A*`` matches it, at every n, over at least 200
  draws;
- :func:`check_e2e_finite_sample`: LoRA-ML retrained on ``N`` samples per task (the exact
  solver and the paper's protocol), then fine-tuned on ``n`` samples of a new task, reaches the
  excess loss predicted from the fitted base and the same expectation -- without running the
  fine-tuning solver for the prediction -- while standard retraining stays at its floor
  (docs/theory.md, section 11.2).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.linalg
from numpy.typing import ArrayLike, NDArray

from lowrank_theory._validation import as_seed_generator, check_float, check_int
from lowrank_theory.adaptation import fine_tune
from lowrank_theory.adapters import SymmetricAdapter
from lowrank_theory.lora_ml import fit_lora_ml
from lowrank_theory.losses import Statistics, statistics
from lowrank_theory.metrics import eckart_young_tail
from lowrank_theory.paper_protocol import PAPER_INIT_SCALE, PAPER_ROUNDS, run_paper_protocol
from lowrank_theory.retraining import standard_retraining
from lowrank_theory.tasks import TaskFamily

from .constructions import _check_family
from .result import CheckResult, NotApplicable, make_result
from .retraining_checks import _covariance_label, _shared_covariance

__all__ = [
    "RATE_BAND",
    "E2E_BAND",
    "MIN_RATE_DRAWS",
    "MIN_E2E_DRAWS",
    "RETRAININGS",
    "expected_rrr_excess",
    "check_ft_rate",
    "check_e2e_finite_sample",
]

#: The mean excess loss over the draws, divided by :func:`expected_rrr_excess`, must lie in
#: this band at every n. A draw's excess is a weighted sum of about k(2d - k) squared Gaussians,
#: with a relative standard deviation of 0.2 to 0.5 for the dimensions checked; over 200 draws
#: the mean's is at most 0.035, so the band is 4 standard errors wide on each side.
RATE_BAND = (0.85, 1.15)
#: Draws per sample size of the rate check (issue: at least 200).
MIN_RATE_DRAWS = 200
#: Band of mean(measured) / mean(predicted) of the end-to-end check, per retraining method:
#: 100 draws with a relative spread of about 0.3 give a standard error of 0.03.
E2E_BAND = (0.85, 1.15)
#: Draws of the end-to-end check (issue: at least 100).
MIN_E2E_DRAWS = 100
#: The retraining methods of the end-to-end check.
RETRAININGS = ("exact", "paper")


def expected_rrr_excess(d: int, k: int, n: int, sigma: float) -> float:
    """Expected excess loss of rank-k reduced-rank regression on n samples from a base at ``A*``.

    ``E ||(D^ - B) Sigma^{1/2}||_F^2 = sigma^2 k [d / (n - d - 1) + (d - k) / (n - k - 1)]``
    for a true update ``B`` of rank k (first order in the noise, exact in n; docs/theory.md,
    section 10). Whitening the inputs, the least-squares error ``S^{-1/2} X^T E`` has i.i.d.
    ``N(0, sigma^2)`` entries given the inputs, the rank-k fit keeps its projection on the
    tangent space of the rank-k matrices, and ``E tr(S^{-1}) = d / (n - d - 1)``,
    ``E tr((Q^T S Q)^{-1}) = k / (n - k - 1)`` for the Wishart ``S = X^T X``. For large n it is
    ``sigma^2 k (2d - k) / n``: the ``k (2d - k)`` parameters of a rank-k d x d matrix.

    Parameters
    ----------
    d, k : int
        Dimension and adapter rank, ``k <= d``.
    n : int
        Samples, ``n > d + 1``.
    sigma : float
        Noise standard deviation.

    Returns
    -------
    float

    Examples
    --------
    >>> round(expected_rrr_excess(10, 1, 100, 0.1) / (0.01 * 19 / 100), 3)  # vs k(2d-k)/n
    1.075
    """
    d = check_int(d, "d")
    k = check_int(k, "k", maximum=d)
    n = check_int(n, "n", minimum=d + 2)
    sigma = check_float(sigma, "sigma", minimum=0.0)
    return sigma**2 * k * (d / (n - d - 1) + (d - k) / (n - k - 1))


def _shifted(base: NDArray, family: TaskFamily, new_task: TaskFamily, size: float,
             rng: np.random.Generator) -> NDArray:
    """``base + size * P G P / ||P G P||_F``, ``P`` the projector off every offset column."""
    if size == 0.0:
        return base
    cols = np.concatenate([*family.U_star, new_task.U_star[0]], axis=1)
    Q = scipy.linalg.orth(cols)
    P = np.eye(family.d) - Q @ Q.T
    G = P @ rng.standard_normal(base.shape) @ P
    return base + size * G / np.linalg.norm(G)


def check_ft_rate(
    family: TaskFamily, ns: Sequence[int] = (100, 300, 1000), n_draws: int = MIN_RATE_DRAWS,
    seed: int | np.random.Generator | None = 0, *, base_shift: float = 0.0,
) -> CheckResult:
    """From ``A*``, rank-k fine-tuning on n samples has the expected excess loss at every n.

    For each n, ``n_draws`` new tasks of ``family`` (same ``A*``, ``sigma`` and covariance,
    fresh offsets) are fine-tuned from ``A*`` by reduced-rank regression
    (``fine_tune(method="exact")``) on n samples; the mean excess loss divided by
    :func:`expected_rrr_excess` must lie in :data:`RATE_BAND` for every n. This tests the
    rate (``~ 1/n``) and its constant at once: the constant in front of ``k d sigma^2 / n`` is
    ``(2d - k) / d`` with the finite-n factors of the expectation (docs/theory.md, section 10).

    Parameters
    ----------
    family : TaskFamily
        Supplies ``A*``, ``d``, ``k``, ``sigma`` and one shared covariance.
    ns : sequence of int
        Sample sizes, each ``> d + 1``.
    n_draws : int, default=200
    seed : int, Generator or None
    base_shift : float, default=0.0
        Fine-tune from ``A* + E`` with ``|E|_F = base_shift`` (a random direction): a base off
        by 1e-3 with n = 1e5 is the control.

    Returns
    -------
    CheckResult
        ``predicted = 1``; ``measured``: the ratio farthest from 1; the detail lists every
        ratio, the issue's normalisation ``excess (n - d - 1) / (sigma^2 k (2d - k))`` and the
        log-log slope in n.
    """
    family = _check_family(family)
    _shared_covariance(family)
    d, k, sigma = family.d, family.k, family.sigma
    n_draws = check_int(n_draws, "n_draws")
    ns = [check_int(n, "ns[i]", minimum=d + 2) for n in ns]
    if sigma == 0.0:
        raise NotApplicable("the rate is an estimation error: it needs noise (sigma > 0).")
    rng = as_seed_generator(seed)
    E = rng.standard_normal((d, d))
    base = family.A_star + base_shift * E / np.linalg.norm(E)
    means = np.array([
        np.mean([fine_tune(base, family.new_task(seed=rng), rank=k, n=n, seed=rng).loss
                 for _ in range(n_draws)]) for n in ns])
    expected = np.array([expected_rrr_excess(d, k, n, sigma) for n in ns])
    ratios = means / expected
    issue = means * (np.asarray(ns) - d - 1) / (sigma**2 * k * (2 * d - k))
    worst = float(ratios[np.argmax(np.abs(ratios - 1.0))])
    lo, hi = RATE_BAND
    slope = f"{np.polyfit(np.log(ns), np.log(means), 1)[0]:.3f}" if len(ns) > 1 else "n/a (one n)"
    parts = ", ".join(f"n={n}: {r:.3f} ({q:.3f})" for n, r, q in zip(ns, ratios, issue))
    return make_result(
        "ft-rate", "from A*, rank-k fine-tuning on n samples: excess = sigma^2 k [d/(n-d-1) + "
        "(d-k)/(n-k-1)] on average", "rate", 1.0, worst, abs(worst - 1.0), hi - 1.0,
        holds=bool(np.all((ratios >= lo) & (ratios <= hi))),
        detail=f"d={d}, k={k}, {_covariance_label(family)}, {n_draws} draws per n, base shift "
        f"{base_shift:g}: mean excess / expectation (and excess*(n-d-1)/(sigma^2 k(2d-k))) "
        f"{parts}; band [{lo}, {hi}]; log-log slope {slope}",
    )


def _paper_bases(stats: Sequence[Statistics], k: int, rng: np.random.Generator) -> NDArray:
    """The bases of the paper's protocol run on each sample's statistics, as one batch."""
    batch = Statistics(np.stack([s.Sxx for s in stats]), np.stack([s.Sxy for s in stats]),
                       np.stack([s.syy for s in stats]))
    B, T, d = len(stats), stats[0].T, stats[0].d
    U0 = PAPER_INIT_SCALE * rng.standard_normal((B, T, d, k))
    run = run_paper_protocol(batch, SymmetricAdapter(k), np.zeros((B, d, d)), (U0,),
                             rounds=PAPER_ROUNDS)
    return run.A


def check_e2e_finite_sample(
    family: TaskFamily, N: int = 2000, n: int = 100, n_draws: int = MIN_E2E_DRAWS,
    seed: int | np.random.Generator | None = 0, *,
    retrainings: Sequence[str] = RETRAININGS, base_shift: ArrayLike = 0.0,
) -> CheckResult:
    """LoRA-ML retrained on N samples, fine-tuned at rank k on n samples: the predicted excess.

    Each draw samples ``N`` points per task of ``family``, retrains LoRA-ML (``"exact"``:
    ``fit_lora_ml``; ``"paper"``: the authors' protocol, 3000 rounds from ``A0 = 0``,
    ``U0 ~ N(0, 0.1^2)``, all draws as one batch), draws a new task and fine-tunes a rank-k
    adapter on ``n`` of its samples (reduced-rank regression). The prediction uses the fitted
    base ``A^`` and no fine-tuning solver:

        tail_k((W*_new - A^) Sigma^{1/2}) + sigma^2 k [d / (n - d - 1) + (d - k) / (n - k - 1)],

    the part of the new task a rank-k adapter cannot reach from ``A^`` (Eckart-Young) plus the
    estimation error of :func:`expected_rrr_excess` (docs/theory.md, section 11.2). Holds when,
    for each retraining method, mean(measured) / mean(predicted) lies in :data:`E2E_BAND` and
    the mean excess is below standard retraining's mean floor
    ``tail_k((W*_new - A_SR^) Sigma^{1/2})`` on the same samples (the contrast).

    Parameters
    ----------
    family : TaskFamily
        ``T >= 3``, one shared covariance.
    N, n : int
        Samples per retraining task and of the new task (``n > d + 1``).
    n_draws : int, default=100
    seed : int, Generator or None
    retrainings : sequence of {"exact", "paper"}
    base_shift : float or array_like, default=0.0
        Fine-tune from ``A^ + delta`` instead, ``delta`` out of the span of every offset column
        with ``|delta|_F = base_shift`` (per draw if an array), while the prediction still uses
        ``A^``: the control.

    Returns
    -------
    CheckResult
        ``predicted = 1``; ``measured``: the ratio farthest from 1.
    """
    family = _check_family(family)
    Sigma = _shared_covariance(family)
    if family.T < 3:
        raise NotApplicable("needs T >= 3 (with T <= 2 LoRA-ML's base is not identified).")
    d, k, sigma = family.d, family.k, family.sigma
    N = check_int(N, "N")
    n = check_int(n, "n", minimum=d + 2)
    n_draws = check_int(n_draws, "n_draws")
    unknown = sorted(set(retrainings) - set(RETRAININGS))
    if unknown or not retrainings:
        raise ValueError(f"retrainings must be a non-empty subset of {RETRAININGS}, got {retrainings}.")
    shifts = np.broadcast_to(np.asarray(base_shift, dtype=float), (n_draws,))
    rng = as_seed_generator(seed)
    estimation = expected_rrr_excess(d, k, n, sigma)
    bases: dict[str, list[NDArray]] = {m: [] for m in retrainings}
    stats, tasks, sr_floor = [], [], []
    for _ in range(n_draws):
        data = family.sample(N, seed=rng)
        new = family.new_task(seed=rng)
        tasks.append((new, int(rng.integers(2**63))))
        if "exact" in bases:
            bases["exact"].append(fit_lora_ml(data, k, seed=rng).A)
        if "paper" in bases:
            stats.append(statistics(data))
        sr_floor.append(eckart_young_tail(new.W_star[0] - standard_retraining(data), k, Sigma))
    if "paper" in bases:
        bases["paper"] = list(_paper_bases(stats, k, rng))
    lo, hi = E2E_BAND
    parts, ratios, ok = [], [], True
    for method, fitted in bases.items():
        measured, predicted, tails = [], [], []
        for A_hat, (new, ft_seed), shift in zip(fitted, tasks, shifts):
            tail = eckart_young_tail(new.W_star[0] - A_hat, k, Sigma)
            base = _shifted(A_hat, family, new, float(shift), np.random.default_rng(ft_seed))
            measured.append(fine_tune(base, new, rank=k, n=n, seed=ft_seed).loss)
            predicted.append(tail + estimation)
            tails.append(tail)
        ratio = float(np.mean(measured) / np.mean(predicted))
        below = float(np.mean(measured)) < float(np.mean(sr_floor))
        ok &= lo <= ratio <= hi and below
        ratios.append(ratio)
        parts.append(f"{method}: mean excess {np.mean(measured):.3g} / predicted "
                     f"{np.mean(predicted):.3g} = {ratio:.3f} (mean tail {np.mean(tails):.2g}, "
                     f"estimation {estimation:.3g})")
    if len(bases) == 2:
        gaps = [np.linalg.norm(a - b) / np.linalg.norm(family.A_star)
                for a, b in zip(bases["exact"], bases["paper"])]
        parts.append(f"paper vs exact base: median |A_paper - A_exact|_F/|A*|_F "
                     f"{np.median(gaps):.1e}")
    worst = max(ratios, key=lambda r: abs(r - 1.0))
    return make_result(
        "e2e-finite-sample", "LoRA-ML on N samples per task, then rank-k fine-tuning on n "
        "samples: excess = tail_k(W*_new - A^) + estimation term", "project (Thm 3, rate)",
        1.0, worst, abs(worst - 1.0), hi - 1.0, holds=ok,
        detail=f"d={d}, k={k}, T={family.T}, N={N}, n={n}, {_covariance_label(family)}, "
        f"{n_draws} draws: " + "; ".join(parts) + f"; band [{lo}, {hi}]; SR floor: mean "
        f"{np.mean(sr_floor):.3g}, {np.mean(sr_floor) / max(estimation, 1e-300):.3g} times the "
        "estimation term",
    )

