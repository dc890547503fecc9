"""Batched training equals one-model-at-a-time training: shallow stacks and vmap-ed Mixers.

The references are the one-model methods (``methods.standard_retraining``, ``methods.lora_ml``,
``finetune.fine_tune``): nn.Modules, one backward pass per task, their own AdamW; they share
no training code with the stacks.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # tiny problems: threads only add contention
pytestmark = pytest.mark.torch

from torch.nn import functional as F  # noqa: E402

from lowrank_theory.neural import methods as M  # noqa: E402
from lowrank_theory.neural.adapters import attach_adapters  # noqa: E402
from lowrank_theory.neural.data import TaskSet, shallow_teacher  # noqa: E402
from lowrank_theory.neural.finetune import fine_tune  # noqa: E402
from lowrank_theory.neural.models import MLPMixer, ShallowNet, seeded  # noqa: E402
from lowrank_theory.neural.shallow import (  # noqa: E402
    ShallowStack,
    adapter_start,
    init_stack,
    stack_errors,
    train_stack,
)
from lowrank_theory.neural.stacked import stacked_fine_tune, stacked_training  # noqa: E402

D, T, K, N = 4, 3, 1, 40
SEEDS = (0, 1)
#: Float32 round-off of a few dozen AdamW steps on O(1) losses (summation order differs).
TOL = 1e-5


def _data(seed):
    teacher = shallow_teacher(D, K, T, 0.1, 100 + seed)
    g = torch.Generator().manual_seed(seed)
    samples = [teacher.sample(t, N, g) for t in range(T)]
    return torch.stack([s[0] for s in samples]), torch.stack([s[1] for s in samples])


@pytest.fixture(scope="module")
def shallow_data():
    return [_data(s) for s in SEEDS]


def _unbatched(method, seed, X, y, steps, lr):
    with seeded(10 + seed):
        net = ShallowNet(D)
    tasks = TaskSet(tuple((X[t], y[t]) for t in range(T)))
    if method == "sr":
        result = M.standard_retraining(net, tasks, F.mse_loss, steps=steps, lr=lr)
    else:
        result = M.lora_ml(net, tasks, F.mse_loss, rank=K, steps=steps, lr=lr,
                           target_modules=["hidden"], seed=20 + seed)
    return result.history, net


def _batched(shallow_data, steps, lr, swap=False):
    order = [(s, m) for s in SEEDS for m in ("sr", "lora_ml")]
    masks = torch.tensor([[1.0 if m == "lora_ml" else 0.0] for _, m in order])
    start = init_stack(D, T, K, [10 + s for s, _ in order], [20 + s for s, _ in order], masks)
    data = [shallow_data[1 - s if swap else s] for s, _ in order]
    X = torch.stack([d[0] for d in data])
    y = torch.stack([d[1] for d in data])
    return order, train_stack(start, X, y, steps=steps, lr=lr)


def test_shallow_stack_follows_the_one_model_path(shallow_data):
    """Two seeds x {SR, LoRA-ML} in one stack give each model's own loss history and final
    weights, to float32 round-off."""
    order, result = _batched(shallow_data, steps=60, lr=1e-2)
    assert result.mode == "eager" and result.history.shape == (60, 4)
    for i, (seed, method) in enumerate(order):
        history, net = _unbatched(method, seed, *shallow_data[seed], steps=60, lr=1e-2)
        np.testing.assert_allclose(result.history[:, i], history, rtol=TOL, atol=TOL)
        torch.testing.assert_close(result.stack.weight[i], net.hidden.weight.detach(),
                                   rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(result.stack.head[i], net.head.weight.detach()[0],
                                   rtol=1e-4, atol=1e-4)


def test_shallow_stack_negative_control(shallow_data):
    """With the two seeds' data swapped, the stack no longer reproduces the one-model runs."""
    order, result = _batched(shallow_data, steps=10, lr=1e-2, swap=True)
    for i, (seed, method) in enumerate(order):
        history, _ = _unbatched(method, seed, *shallow_data[seed], steps=10, lr=1e-2)
        assert np.abs(result.history[:, i] - history).max() > 1e-3


def _finetune_reference(net, X, y, X_test, y_test, rank, seed, steps, lr):
    train = TaskSet(((X, y),))
    test = TaskSet(((X_test, y_test),))
    return fine_tune(net, train, test, F.mse_loss, mode="lora", steps=steps, lr=lr, rank=rank,
                     target_modules=["hidden"], seed=seed).test_loss


@pytest.mark.parametrize("rank", [1, 3])
def test_padded_fine_tuning_stack_matches_fine_tune(rank):
    """A rank-r adapter padded to rank 3 (mask 0 on the padding) fine-tunes exactly as
    ``fine_tune`` does with an unpadded rank-r adapter; with the mask all ones (negative
    control) a rank-1 model differs."""
    teacher = shallow_teacher(D, K, T, 0.1, 7)
    g = torch.Generator().manual_seed(3)
    X, y, _ = teacher.sample(T, 30, g)
    X_test, y_test, _ = teacher.sample(T, 200, g)
    with seeded(5):
        net = ShallowNet(D)
    expected = _finetune_reference(net, X, y, X_test, y_test, rank, seed=9, steps=40, lr=1e-2)

    def stacked(mask):
        start = ShallowStack(
            weight=net.hidden.weight.detach()[None].clone(),
            head=net.head.weight.detach().clone(),
            lora_A=adapter_start(D, 1, 3, 9)[0][None], lora_B=torch.zeros(1, 1, D, 3),
            mask=torch.tensor([mask]),
        )
        tuned = train_stack(start, X[None, None], y[None, None], steps=40, lr=1e-2,
                            train_base=False).stack
        torch.testing.assert_close(tuned.weight[0], net.hidden.weight.detach())  # frozen
        return float(stack_errors(tuned, X_test[None], y_test[None])[0])

    got = stacked([1.0] * rank + [0.0] * (3 - rank))
    assert got == pytest.approx(expected, rel=1e-5)
    if rank == 1:
        assert stacked([1.0, 1.0, 1.0]) != pytest.approx(expected, rel=1e-3)


def test_train_stack_validates_its_inputs(shallow_data):
    start = init_stack(D, T, K, [0], [0], torch.ones(1, K))
    X, y = shallow_data[0]
    with pytest.raises(ValueError, match="steps must be >= 1"):
        train_stack(start, X[None], y[None], steps=0, lr=1e-3)
    with pytest.raises(ValueError, match="X must have shape"):
        train_stack(start, X, y[None], steps=1, lr=1e-3)
    with pytest.raises(ValueError, match="y must have shape"):
        train_stack(start, X[None], y[None, :, :5], steps=1, lr=1e-3)
    with pytest.raises(ValueError, match="mask must have shape"):
        ShallowStack(start.weight, start.head, start.lora_A, start.lora_B, torch.ones(2, 1))


# ---------------------------------------------------------------------- vmap-ed Mixers
def _image_task(n, g):
    X = torch.randn(n, 1, 8, 8, generator=g)
    return X, (X.mean((1, 2, 3)) > 0).float()


@pytest.fixture(scope="module")
def image_tasks():
    g = torch.Generator().manual_seed(0)
    return TaskSet(tuple(_image_task(32, g) for _ in range(3)))


def _mixer(seed):
    with seeded(seed):
        return MLPMixer(8, 1, 2, 8)


def _prepare(method, models, seeds):
    for model, s in zip(models, seeds, strict=True):
        if method == "lora_ml":
            attach_adapters(model, 3, 2, seed=s)
        elif method == "last_layer_ml":
            M.attach_task_heads(model, 3)


@pytest.mark.parametrize("method", ["sr", "lora_ml", "last_layer_ml"])
def test_stacked_mixers_follow_the_one_model_path(method, image_tasks):
    """Two seeds' Mixers trained as one vmap-ed stack reproduce each seed's one-model loss
    history (own initialisation, own mini-batches); with the mini-batch seeds swapped
    (negative control) they do not."""
    bce = F.binary_cross_entropy_with_logits
    reference = []
    for s in SEEDS:
        result = M.retrain(method, _mixer(s), image_tasks, bce, steps=6, lr=1e-2, rank=2,
                           alpha=None, symmetric=False, target_modules=None, batch_size=8,
                           inner_steps=1, inner_lr=0.1, meta_lr=0.5, seed=30 + s)
        reference.append(result.history)
    for swap, check in ((False, True), (True, False)):
        models = [_mixer(s) for s in SEEDS]
        _prepare(method, models, [30 + s for s in SEEDS])
        batch_seeds = [31, 30] if swap else [30, 31]
        history = stacked_training(models, [image_tasks] * 2, bce, steps=6, lr=1e-2,
                                   seeds=batch_seeds, batch_size=8)
        diff = np.abs(history - np.stack(reference, axis=1)).max()
        assert bool(diff < TOL) is check, (swap, diff)


@pytest.mark.parametrize("mode", ["lora", "last_layer"])
def test_stacked_fine_tune_matches_fine_tune(mode, image_tasks):
    """Stacked fine-tuning of two models gives each the test loss ``fine_tune`` gives it."""
    bce = F.binary_cross_entropy_with_logits
    g = torch.Generator().manual_seed(1)
    models = [_mixer(s) for s in SEEDS]
    train = [TaskSet((_image_task(16, g),)) for _ in SEEDS]
    test = TaskSet((_image_task(40, g),))
    results = stacked_fine_tune(models, train, test, bce, mode=mode, steps=5, lr=1e-2,
                                seeds=[5, 6], rank=2, batch_size=8)
    for model, tr, s, got in zip(models, train, [5, 6], results, strict=True):
        ref = fine_tune(model, tr, test, bce, mode=mode, steps=5, lr=1e-2, rank=2,
                        batch_size=8, seed=s)
        assert got.test_loss == pytest.approx(ref.test_loss, rel=1e-5)
        assert got.initial_test_loss == pytest.approx(ref.initial_test_loss, rel=1e-6)
        assert got.trainable == ref.trainable


def test_stacked_training_validates_its_inputs(image_tasks):
    bce = F.binary_cross_entropy_with_logits
    models = [_mixer(0), _mixer(1)]
    with pytest.raises(ValueError, match="one TaskSet and one seed per model"):
        stacked_training(models, [image_tasks], bce, steps=1, lr=1e-3, seeds=[0, 1])
    with pytest.raises(ValueError, match="optimizer"):
        stacked_training(models, [image_tasks] * 2, bce, steps=1, lr=1e-3, seeds=[0, 1],
                         optimizer="sgd")
    with pytest.raises(ValueError, match="schedule"):
        stacked_training(models, [image_tasks] * 2, bce, steps=1, lr=1e-3, seeds=[0, 1],
                         schedule="step")
    small = TaskSet(tuple((x[:8], y[:8]) for x, y in image_tasks.tasks))
    with pytest.raises(ValueError, match="batches of different sizes"):
        stacked_training(models, [image_tasks, small], bce, steps=1, lr=1e-3, seeds=[0, 1],
                         batch_size=16)


def test_stack_gradients_equal_autograd():
    """The hand-written passes give autograd's gradients of sum_m L_m (random B, a mixed rank
    mask); a stack whose mask differs (negative control) does not."""
    from lowrank_theory.neural.shallow import StackGradients

    g = torch.Generator().manual_seed(0)
    masks = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    stack = init_stack(D, 2, 3, [0, 1, 2], [3, 4, 5], masks)
    stack.lora_B = torch.randn(3, 2, D, 3, generator=g)
    X, y = torch.randn(3, 2, 9, D, generator=g), torch.randn(3, 2, 9, generator=g)
    passes = StackGradients(stack, X, y, train_base=True)
    losses = passes(stack).clone()
    names = ["weight", "head", "lora_A", "lora_B"]

    def autograd(mask):
        live = ShallowStack(*(t.clone().requires_grad_(n in names) for n, t in
                              zip([*names, "mask"], [*(getattr(stack, n) for n in names), mask],
                                  strict=True)))
        value = live.losses(X, y)
        return value.detach(), torch.autograd.grad(value.sum(), [getattr(live, n) for n in names])

    value, grads = autograd(masks)
    torch.testing.assert_close(losses, value)
    for name, expected in zip(names, grads, strict=True):
        torch.testing.assert_close(passes.grads[name], expected, rtol=1e-5, atol=1e-6)
    _, wrong = autograd(torch.ones(3, 3))
    assert not torch.allclose(passes.grads["lora_A"], wrong[2], atol=1e-4)
