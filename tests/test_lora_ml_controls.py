"""Negative controls for the LoRA-ML solvers: claims a solver that returns the truth must fail.

The exact solver may read ``A*`` and ``U*`` (a change of variables, see ``fit_lora_ml``), so a
stub that returns ``(A*, U*)`` satisfies every recovery test of ``test_lora_ml.py``. The
controls below check what the theory says where the truth is NOT the answer: for T = 2, T = 1
and collinear offsets the zero-loss minima form a set, so different starts end at different
bases (Theorem 4 and its remarks), and from a start near a zero-loss minimum off ``A*`` the
solver must move to that nearby minimum. Each control runs on the real solvers (must pass)
and on the stub fixture (must fail), in scikit-learn's style of checking the checks.
"""

import numpy as np
import pytest

import lowrank_theory as lt
from lowrank_theory.adapters import SymmetricAdapter
from lowrank_theory.lora_ml import LoRAMLResult

#: Objective below which a population fit counts as a zero-loss (global) minimum here; the
#: solvers reach 1e-20 and below on these problems.
ZERO = 1e-12


@pytest.fixture
def truth_stub():
    """A fake ``fit_lora_ml`` that ignores its start and returns the ground truth."""

    def fit(source, k=None, **_):
        fam = source if isinstance(source, lt.TaskFamily) else source.family
        return LoRAMLResult(
            fam.A_star.copy(), fam.U_star.copy(), None,
            lt.lora_ml_objective(fam, fam.A_star, fam.U_star), np.zeros(1), 0.0, 0.0, True, 0,
            "stub", "exact", SymmetricAdapter(k),
        )

    return fit


def _random_starts(fit, fam, n_starts, seed):
    rng = np.random.default_rng(seed)
    return [fit(fam, k=fam.k, U0=rng.standard_normal(fam.U_star.shape)) for _ in range(n_starts)]


def _check_not_identified(fits, fam):
    """Every start reaches zero loss, and the bases differ: the data do not determine A."""
    for f in fits:
        assert f.objective <= ZERO * max(1.0, np.sum(fam.W_star**2))
    scale = np.linalg.norm(fam.A_star)
    spread = max(np.linalg.norm(a.A - b.A) for a in fits for b in fits)
    assert spread > 1e-3 * scale, "all starts gave the same base: A looks identified"
    assert max(np.linalg.norm(f.A - fam.A_star) for f in fits) > 1e-3 * scale


def control_two_tasks(fit):
    """T = 2 (Theorem 4): zero-loss minima with A != A*, and A^ - A* = U*_t U*_t^T - U^_t U^_t^T."""
    fam = lt.TaskFamily.random(d=6, k=1, T=2, seed=0)
    fits = _random_starts(fit, fam, 3, seed=1)
    _check_not_identified(fits, fam)
    for f in fits:
        for t in range(2):
            np.testing.assert_allclose(
                f.A - fam.A_star, fam.offsets[t] - f.U[t] @ f.U[t].T, atol=1e-6
            )


def control_one_task(fit):
    """T = 1: any A with W*_1 - A PSD of rank <= k is optimal, so A is not identified."""
    fam = lt.TaskFamily.random(d=6, k=1, T=1, seed=0)
    fits = _random_starts(fit, fam, 3, seed=2)
    _check_not_identified(fits, fam)
    for f in fits:
        assert np.linalg.eigvalsh(fam.W_star[0] - f.A).min() >= -1e-8


def control_collinear_offsets(fit):
    """Offsets sharing one column q (T = 3): A^ = A* + c q q^T for a range of c."""
    fam = lt.TaskFamily.collinear(d=6, k=1, T=3, seed=1)
    fits = _random_starts(fit, fam, 3, seed=3)
    _check_not_identified(fits, fam)
    q = fam.U_star[0] / np.linalg.norm(fam.U_star[0])
    for f in fits:
        D = f.A - fam.A_star
        # The minima are degenerate along the set, so 1e-21 objective leaves ~1e-6 in A.
        np.testing.assert_allclose(D, (q.T @ D @ q) * (q @ q.T), atol=1e-4)


def control_moves_to_the_nearby_minimum(fit):
    """From near a zero-loss minimum off A* (a hyperbolic rotation of the T = 2 offsets), the
    solver moves to that minimum, not to A*."""
    fam = lt.TaskFamily.random(d=6, k=1, T=2, seed=0)
    u = fam.U_star[:, :, 0].T  # (d, 2)
    s = 0.5
    v = u @ np.array([[np.cosh(s), np.sinh(s)], [np.sinh(s), np.cosh(s)]])
    A1 = fam.A_star + np.outer(u[:, 0], u[:, 0]) - np.outer(v[:, 0], v[:, 0])
    U1 = v.T[:, :, None]
    assert lt.lora_ml_objective(fam, A1, U1) < 1e-20  # a global minimum with A1 != A*
    U0 = U1 + 0.05 * np.random.default_rng(4).standard_normal(U1.shape)
    f = fit(fam, k=1, U0=U0, A0=A1)
    assert f.objective <= ZERO * np.sum(fam.W_star**2)
    assert np.linalg.norm(f.U @ np.swapaxes(f.U, 1, 2) - U0 @ np.swapaxes(U0, 1, 2)) > 1e-3
    assert np.linalg.norm(f.A - A1) < 0.1 * np.linalg.norm(A1 - fam.A_star)


CONTROLS = [control_two_tasks, control_one_task, control_collinear_offsets,
            control_moves_to_the_nearby_minimum]


@pytest.mark.parametrize("control", CONTROLS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("method", ["exact", "lbfgs"])
def test_control_passes_on_the_solver(control, method):
    def fit(source, k, U0, A0=None):
        # The exact solver eliminates the base (it refuses A0); L-BFGS starts from A0.
        A0 = None if method == "exact" else A0
        return lt.fit_lora_ml(source, k=k, U0=U0, A0=A0, method=method, seed=0)

    control(fit)


@pytest.mark.parametrize("control", CONTROLS, ids=lambda c: c.__name__)
def test_control_fails_on_the_truth_stub(control, truth_stub):
    with pytest.raises(AssertionError):
        control(truth_stub)


def test_stub_passes_the_recovery_claims(truth_stub):
    """Why the controls are needed: the stub meets the T = 3 recovery claim exactly."""
    fam = lt.TaskFamily.random(d=10, k=1, T=3, seed=0)
    fit = truth_stub(fam, k=1)
    assert lt.metrics.base_error(fit.A, fam.A_star) == 0.0
    np.testing.assert_array_equal(lt.metrics.offset_error(fit.U, fam.U_star), 0.0)
