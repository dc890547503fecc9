"""Tests of lowrank_theory/neural/methods.py and finetune.py: retraining and fine-tuning."""

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # tiny problems: threads only add contention
pytestmark = pytest.mark.torch

from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from lowrank_theory.neural import methods as M  # noqa: E402
from lowrank_theory.neural.adapters import banks  # noqa: E402
from lowrank_theory.neural.data import TaskSet, shallow_teacher  # noqa: E402
from lowrank_theory.neural.finetune import fine_tune, summarise  # noqa: E402
from lowrank_theory.neural.models import ShallowNet, seeded  # noqa: E402


@pytest.fixture(scope="module")
def shallow():
    """Three shallow-network tasks (d = 4) and an unseen task's train/test samples."""
    teacher = shallow_teacher(d=4, k=1, T=3, sigma=0.1, seed=0)
    g = torch.Generator().manual_seed(0)
    tasks = TaskSet(tuple(teacher.sample(t, 200, g)[:2] for t in range(3)))
    return tasks, TaskSet((teacher.sample(3, 50, g)[:2],)), TaskSet((teacher.sample(3, 200, g)[:2],))


def _model(seed=0):
    with seeded(seed):
        return ShallowNet(4)


def _mean_loss(model, tasks):
    with torch.no_grad():
        return float(np.mean([F.mse_loss(model(*b[:-1]), b[-1]) for b in tasks.tasks]))


RUNS = {
    "sr": lambda m, t: M.standard_retraining(m, t, F.mse_loss, steps=150, lr=1e-2),
    "lora_ml": lambda m, t: M.lora_ml(
        m, t, F.mse_loss, rank=1, symmetric=True, target_modules=["hidden"], steps=150, lr=1e-2),
    "last_layer_ml": lambda m, t: M.last_layer_ml(m, t, F.mse_loss, steps=150, lr=1e-2),
    "reptile": lambda m, t: M.reptile(
        m, t, F.mse_loss, meta_steps=30, inner_steps=5, inner_lr=1e-2, batch_size=64),
    "maml": lambda m, t: M.maml(
        m, t, F.mse_loss, meta_steps=60, inner_lr=0.1, meta_lr=1e-2, batch_size=64),
    "fomaml": lambda m, t: M.maml(
        m, t, F.mse_loss, meta_steps=60, inner_lr=0.1, meta_lr=1e-2, first_order=True),
}


@pytest.mark.parametrize("method", sorted(RUNS))
def test_each_method_reduces_its_loss(method, shallow):
    """A few steps of every retraining method lower the mean retraining loss."""
    tasks = shallow[0]
    model = _model()
    before = _mean_loss(model, tasks)
    result = RUNS[method](model, tasks)
    assert result.model is model
    assert np.all(np.isfinite(result.history))
    if method == "lora_ml":
        assert len(list(banks(model))) == 1
        losses = []
        for t in range(3):
            from lowrank_theory.neural.adapters import set_task

            set_task(model, t)
            with torch.no_grad():
                losses.append(float(F.mse_loss(model(tasks.tasks[t][0]), tasks.tasks[t][1])))
        set_task(model, None)
        after = float(np.mean(losses))
    else:
        after = _mean_loss(model, tasks)
    assert after < 0.7 * before, (method, before, after)


def test_methods_are_deterministic(shallow):
    """The same seed gives the same retrained model."""
    tasks = shallow[0]
    a = M.reptile(_model(), tasks, F.mse_loss, meta_steps=3, batch_size=32, seed=4).model
    b = M.reptile(_model(), tasks, F.mse_loss, meta_steps=3, batch_size=32, seed=4).model
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_invalid_steps(shallow):
    with pytest.raises(ValueError, match="steps must be >= 1"):
        M.standard_retraining(_model(), shallow[0], F.mse_loss, steps=0)
    with pytest.raises(ValueError, match="meta_steps"):
        M.maml(_model(), shallow[0], F.mse_loss, meta_steps=0)


# ---------------------------------------------------------------------- MAML meta-gradient
def _linear_regression(d=3, n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    model = nn.Linear(d, 1, bias=False).double()
    w = torch.randn(1, d, generator=g, dtype=torch.float64)
    batches = []
    for _ in range(2):  # two tasks
        Xs, Xq = (torch.randn(n, d, generator=g, dtype=torch.float64) for _ in range(2))
        ys, yq = (torch.randn(n, generator=g, dtype=torch.float64) for _ in range(2))
        batches.append(((Xs, ys), (Xq, yq)))
    return model, {"weight": w}, batches


def _loss(out, y):
    return ((out.squeeze(-1) - y) ** 2).mean()


@pytest.mark.parametrize("first_order", [False, True])
def test_maml_meta_gradient_closed_form(first_order):
    """Linear regression, one inner step: g = (I - a H_s) grad L_q(w') (FO: grad L_q(w'))."""
    model, params, batches = _linear_regression()
    a = 0.05
    grads, _ = M.maml_meta_gradient(
        model, params, [b[0] for b in batches], [b[1] for b in batches], _loss,
        inner_lr=a, first_order=first_order,
    )
    w = params["weight"][0]
    expected = torch.zeros_like(w)
    for (Xs, ys), (Xq, yq) in batches:
        n = Xs.shape[0]
        H = 2 * Xs.T @ Xs / n
        w_prime = w - a * (H @ w - 2 * Xs.T @ ys / n)
        gq = 2 * Xq.T @ (Xq @ w_prime - yq) / n
        expected += (gq if first_order else (torch.eye(len(w)) - a * H) @ gq) / len(batches)
    torch.testing.assert_close(grads["weight"][0], expected)


def test_maml_meta_gradient_taylor_slope():
    """Second-order meta-gradient of a nonlinear net, two inner steps: the first-order Taylor
    remainder |F(p + h v) - F(p) - h <g, v>| shrinks like h^2 (slope 2 on a log-log scale),
    which a wrong gradient (remainder ~ h) would fail."""
    g = torch.Generator().manual_seed(0)
    with seeded(0):
        model = ShallowNet(3).double()
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    support, query = [], []
    for _ in range(3):
        X = torch.randn(2, 10, 3, generator=g, dtype=torch.float64)
        y = torch.randn(2, 10, generator=g, dtype=torch.float64)
        support.append((X[0], y[0]))
        query.append((X[1], y[1]))
    kwargs = {"inner_lr": 0.3, "inner_steps": 2}
    grads, value = M.maml_meta_gradient(model, params, support, query, F.mse_loss, **kwargs)
    direction = {k: torch.randn(v.shape, generator=g, dtype=torch.float64) for k, v in params.items()}
    slope = sum(float((grads[k] * direction[k]).sum()) for k in params)
    hs = np.logspace(-1, -3, 5)
    remainders = []
    for h in hs:
        moved = {k: params[k] + h * direction[k] for k in params}
        _, v = M.maml_meta_gradient(model, moved, support, query, F.mse_loss, **kwargs)
        remainders.append(abs(float(v) - float(value) - h * slope))
    fit = np.polyfit(np.log(hs), np.log(remainders), 1)[0]
    assert 1.8 < fit < 2.2, (fit, remainders)


def test_first_order_differs_from_second_order():
    """FOMAML drops the Hessian term, so on a curved problem its gradient differs."""
    model, params, batches = _linear_regression()
    s, q = [b[0] for b in batches], [b[1] for b in batches]
    g2, _ = M.maml_meta_gradient(model, params, s, q, _loss, inner_lr=0.1)
    g1, _ = M.maml_meta_gradient(model, params, s, q, _loss, inner_lr=0.1, first_order=True)
    assert not torch.allclose(g1["weight"], g2["weight"])


def test_vmap_matches_loop():
    """The vmapped meta-gradient equals the per-task loop."""
    model, params, batches = _linear_regression()
    s, q = [b[0] for b in batches], [b[1] for b in batches]
    g_v, l_v = M.maml_meta_gradient(model, params, s, q, _loss, inner_lr=0.1, inner_steps=2)
    g_l, l_l = M.maml_meta_gradient(
        model, params, s, q, _loss, inner_lr=0.1, inner_steps=2, vectorize=False)
    torch.testing.assert_close(g_v["weight"], g_l["weight"])
    torch.testing.assert_close(l_v, l_l)


# ---------------------------------------------------------------------- fine-tuning
def test_fine_tune_fresh_adapter_and_head(shallow):
    """Fine-tuning starts from the retrained function (fresh B = 0), trains only the new
    parameters, lowers the test loss and never touches the retrained model."""
    tasks, train, test = shallow
    retrained = M.lora_ml(_model(), tasks, F.mse_loss, rank=1, symmetric=True,
                          target_modules=["hidden"], steps=100, lr=1e-2).model
    snapshot = {k: v.clone() for k, v in retrained.state_dict().items()}
    ft = fine_tune(retrained, train, test, F.mse_loss, mode="lora", steps=200, lr=1e-2,
                   rank=1, target_modules=["hidden"], eval_every=50, seed=0)
    assert ft.trainable == 2 * 4  # one rank-1 B A on the 4x4 layer
    assert ft.test_loss < ft.initial_test_loss
    assert len(ft.history) == 5 and ft.history[0] == ft.initial_test_loss
    for k, v in retrained.state_dict().items():
        assert torch.equal(v, snapshot[k])
    head = fine_tune(retrained, train, test, F.mse_loss, mode="last_layer", steps=200, lr=1e-2)
    assert head.trainable == 4
    assert not list(banks(head.model))
    with pytest.raises(ValueError, match="mode must be one of"):
        fine_tune(retrained, train, test, F.mse_loss, mode="full", steps=1)


def test_fine_tune_start_shared_by_sr_and_lora_ml(shallow):
    """SR and LoRA-ML models receive the same fresh adapter for one fine-tuning seed."""
    tasks, train, test = shallow
    sr = M.standard_retraining(_model(), tasks, F.mse_loss, steps=5).model
    ml = M.lora_ml(_model(), tasks, F.mse_loss, rank=1, target_modules=["hidden"], steps=5).model
    a = fine_tune(sr, train, test, F.mse_loss, steps=1, lr=0.0, target_modules=["hidden"], seed=3)
    b = fine_tune(ml, train, test, F.mse_loss, steps=1, lr=0.0, target_modules=["hidden"], seed=3)
    bank_a, bank_b = dict(banks(a.model))["hidden"], dict(banks(b.model))["hidden"]
    assert torch.equal(bank_a.lora_A, bank_b.lora_A) and bank_b.num_tasks == 1


def test_summarise_mean_and_standard_error():
    table = pd.DataFrame({"method": ["a", "a", "a", "b"], "seed": [0, 1, 2, 0],
                          "loss": [1.0, 2.0, 3.0, 5.0]})
    out = summarise(table, "loss", by=["method"]).set_index("method")
    assert out.loc["a", "mean"] == 2.0
    assert out.loc["a", "se"] == pytest.approx(1.0 / np.sqrt(3))
    assert np.isnan(out.loc["b", "se"]) and out.loc["b", "count"] == 1
    with pytest.raises(ValueError, match="not a column"):
        summarise(table, "nope")
