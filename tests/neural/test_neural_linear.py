"""The torch LoRA-ML agrees with the numpy linear core (lowrank_theory.fit_lora_ml)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # tiny problems: threads only add contention
pytestmark = pytest.mark.torch

from torch import nn  # noqa: E402

import lowrank_theory as lt  # noqa: E402
from lowrank_theory.neural import methods as M  # noqa: E402
from lowrank_theory.neural.adapters import banks  # noqa: E402
from lowrank_theory.neural.data import TaskSet  # noqa: E402
from lowrank_theory.neural.models import seeded  # noqa: E402


def _sum_of_squares(out, y):
    # (1/N) sum_i ||y_i - W x_i||^2, the core's per-task empirical loss.
    return ((out - y) ** 2).sum(dim=-1).mean()


def test_torch_lora_ml_reaches_numpy_solution(global_random_seed):
    """On the linear model (T = 3, where the minimiser's A is unique), AdamW on the torch
    LoRA-ML objective reaches the base A and the objective of the numpy exact solver on the
    same samples, and both are close to A*."""
    d, k, T = 4, 1, 3
    fam = lt.TaskFamily.random(d=d, k=k, T=T, sigma=0.1, seed=global_random_seed)
    data = fam.sample(n=2000, seed=global_random_seed + 100)
    reference = lt.fit_lora_ml(data, k=k, seed=0)

    tasks = TaskSet(tuple((torch.tensor(data.X[t]), torch.tensor(data.Y[t])) for t in range(T)))
    with seeded(global_random_seed):
        model = nn.Sequential(nn.Linear(d, d, bias=False)).double()
    result = M.lora_ml(model, tasks, _sum_of_squares, rank=k, symmetric=True, steps=4000,
                       lr=3e-2, weight_decay=0.0)
    A = model[0].weight.detach().numpy()
    np.testing.assert_allclose(A, reference.A, atol=5e-4 * np.linalg.norm(reference.A))
    # Our history averages the T task losses; the core's objective sums them.
    assert T * result.history[-1] == pytest.approx(reference.objective, rel=1e-4)
    U = dict(banks(model))["0"].lora_U.detach().numpy()
    offsets = U @ np.swapaxes(U, 1, 2)
    ref_offsets = reference.U @ np.swapaxes(reference.U, 1, 2)
    np.testing.assert_allclose(offsets, ref_offsets, atol=1e-3 * np.abs(ref_offsets).max())
    assert np.linalg.norm(A - fam.A_star) < 0.05 * np.linalg.norm(fam.A_star)
