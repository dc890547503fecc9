"""Tests of lowrank_theory/neural/adapters.py: the per-task LoRA bank."""

import copy
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # tiny problems: threads only add contention
pytestmark = pytest.mark.torch

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from torch import nn  # noqa: E402

from lowrank_theory.neural.adapters import (  # noqa: E402
    LoRABank,
    adapter_parameters,
    attach_adapters,
    banks,
    base_parameters,
    export_peft_state_dict,
    peft_config,
    remove_adapters,
    reset_adapters,
    set_task,
)
from lowrank_theory.neural.models import MLPMixer, ShallowNet, seeded  # noqa: E402


def _bank(symmetric=False, T=3, r=2, d_in=6, d_out=6, alpha=None, seed=0):
    with seeded(seed):
        linear = nn.Linear(d_in, d_out)
    return LoRABank(linear, T, r, alpha=alpha, symmetric=symmetric,
                    generator=torch.Generator().manual_seed(seed))


def _randomise_B(bank, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        bank.lora_B.copy_(torch.randn(bank.lora_B.shape, generator=g))


def test_shapes_and_peft_naming():
    """A is (T, r, in), B is (T, out, r), the base keeps the layer's weight and bias."""
    bank = _bank(T=3, r=2, d_in=5, d_out=4)
    assert bank.lora_A.shape == (3, 2, 5)
    assert bank.lora_B.shape == (3, 4, 2)
    assert bank.weight.shape == (4, 5) and bank.bias.shape == (4,)
    assert bank.delta(1).shape == (4, 5)


def test_zero_B_leaves_output_unchanged():
    """A fresh asymmetric adapter (B = 0) does not change the layer, for every task."""
    bank = _bank(d_in=5, d_out=4)
    x = torch.randn(7, 5)
    base = bank(x)
    assert torch.equal(base, nn.functional.linear(x, bank.weight, bank.bias))
    for t in range(3):
        bank.active_task = t
        torch.testing.assert_close(bank(x), base)
    assert torch.count_nonzero(bank.lora_A) > 0  # A random, as peft's


def test_forward_equals_dense_update_and_scaling():
    """Forward with task t equals x (W + (alpha/r) B_t A_t)^T + b (the low-rank path is exact)."""
    bank = _bank(d_in=5, d_out=4, r=2, alpha=6.0)
    _randomise_B(bank)
    x = torch.randn(7, 5)
    bank.active_task = 2
    dense = bank.weight + 3.0 * bank.lora_B[2] @ bank.lora_A[2]
    torch.testing.assert_close(bank(x), x @ dense.T + bank.bias)


def test_select_switches_tasks():
    """Different active tasks give different outputs; None gives the base."""
    model = ShallowNet(4)
    attach_adapters(model, 3, 1, target_modules=["hidden"], seed=0)
    for _, bank in banks(model):
        _randomise_B(bank)
    x = torch.randn(5, 4)
    outs = []
    for t in (0, 1, 2):
        set_task(model, t)
        outs.append(model(x))
    assert not torch.allclose(outs[0], outs[1]) and not torch.allclose(outs[1], outs[2])
    set_task(model, None)
    with torch.no_grad():
        expected = model.head(torch.sigmoid(x @ model.hidden.weight.T)).squeeze(-1)
    torch.testing.assert_close(model(x), expected)
    with pytest.raises(ValueError, match="task must be in"):
        set_task(model, 3)


def test_merge_unmerge_round_trip():
    """Merging task t reproduces the adapted output; unmerging restores the base exactly."""
    bank = _bank()
    _randomise_B(bank)
    x = torch.randn(7, 6)
    W0 = bank.weight.detach().clone()
    bank.active_task = 1
    adapted = bank(x)
    bank.merge(1)
    torch.testing.assert_close(bank(x), adapted)
    with pytest.raises(ValueError, match="already merged"):
        bank.merge(0)
    bank.unmerge()
    torch.testing.assert_close(bank.weight.detach(), W0)
    torch.testing.assert_close(bank(x), adapted)
    with pytest.raises(ValueError, match="no task is merged"):
        bank.unmerge()


def test_symmetric_variant():
    """Symmetric: Delta_t = U_t U_t^T is symmetric PSD of rank r; it needs a square layer."""
    bank = _bank(symmetric=True, T=2, r=2, d_in=5, d_out=5)
    assert bank.lora_U.shape == (2, 5, 2)
    delta = bank.delta(0).detach()
    torch.testing.assert_close(delta, delta.T)
    eig = torch.linalg.eigvalsh(delta)
    assert eig.min() > -1e-6 and int((eig > 1e-8).sum()) == 2
    # U = 0 is a stationary point, so the start must not be zero.
    assert torch.count_nonzero(bank.lora_U) == bank.lora_U.numel()
    with pytest.raises(ValueError, match="square"):
        _bank(symmetric=True, d_in=5, d_out=4)


def test_invalid_arguments():
    with pytest.raises(TypeError, match="nn.Linear"):
        LoRABank(nn.Conv1d(2, 2, 1), 1, 1)
    with pytest.raises(ValueError, match="num_tasks"):
        _bank(T=0)
    with pytest.raises(ValueError, match="rank"):
        _bank(r=0)
    with pytest.raises(ValueError, match="matches no linear layer"):
        attach_adapters(ShallowNet(3), 1, 1, target_modules=["nope"])


def test_fresh_adapters_are_shared_across_models():
    """Two models of one architecture get identical fresh adapters from one seed."""
    a, b = MLPMixer(8, 1, 2, 8), MLPMixer(8, 1, 2, 8)
    attach_adapters(a, 1, 2, seed=5)
    attach_adapters(b, 4, 1, seed=0)
    reset_adapters(b, 1, 2, seed=5)
    for pa, pb in zip(adapter_parameters(a), adapter_parameters(b), strict=True):
        assert torch.equal(pa, pb)


def test_parameter_split_and_remove():
    """Adapters and base partition the parameters; removing banks restores plain Linears."""
    model = MLPMixer(8, 1, 2, 8)
    n_before = sum(p.numel() for p in model.parameters())
    names = attach_adapters(model, 2, 1, seed=0)
    assert "head" in names and "embed" in names
    base = base_parameters(model)
    assert sum(p.numel() for p in base) == n_before
    x = torch.randn(3, 1, 8, 8)
    set_task(model, None)
    out = model(x)
    remove_adapters(model)
    assert not list(banks(model))
    assert all(type(m) is not LoRABank for m in model.modules())
    torch.testing.assert_close(model(x), out)


def test_import_does_not_load_torch():
    """``import lowrank_theory``, the command line and the neural configs never import torch."""
    code = ("import sys, lowrank_theory, lowrank_theory.neural, lowrank_theory.cli, "
            "lowrank_theory.simulations.neural, lowrank_theory.simulations.neural.configs; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("symmetric", [False, True])
def test_peft_export_round_trip(symmetric):
    """peft loads the exported adapter and its model then computes our adapted output."""
    peft = pytest.importorskip("peft")
    with seeded(0):
        model = nn.Sequential(nn.Linear(6, 6), nn.Tanh(), nn.Linear(6, 3))
    ours = copy.deepcopy(model)
    targets = ["0"] if symmetric else ["0", "2"]
    attach_adapters(ours, 3, 2, alpha=5.0, symmetric=symmetric, target_modules=targets, seed=1)
    for _, bank in banks(ours):
        if not symmetric:
            _randomise_B(bank)
    set_task(ours, 1)
    x = torch.randn(4, 6)
    expected = ours(x)

    peft_model = peft.get_peft_model(copy.deepcopy(model), peft_config(ours))
    state = export_peft_state_dict(ours, 1)
    result = peft.set_peft_model_state_dict(peft_model, state)
    assert not [k for k in result.unexpected_keys if "lora" in k]
    torch.testing.assert_close(peft_model(x), expected)


@st.composite
def bank_cases(draw):
    """Layer shapes, task count, rank, scaling and adapter kind, valid by construction."""
    symmetric = draw(st.booleans())
    d_in = draw(st.integers(1, 6))
    d_out = d_in if symmetric else draw(st.integers(1, 6))
    return {
        "d_in": d_in, "d_out": d_out, "symmetric": symmetric,
        "T": draw(st.integers(1, 4)), "r": draw(st.integers(1, 4)),
        "alpha": draw(st.sampled_from([None, 0.5, 3.0])), "seed": draw(st.integers(0, 2**16)),
    }


@given(case=bank_cases())
def test_bank_is_base_plus_scaled_delta(case):
    """For every task: forward = x (W + (alpha/r) Delta_t)^T + b, merge gives the same map,
    and unmerge restores W; Delta_t is symmetric whenever the adapter is."""
    bank = _bank(**case)
    if not case["symmetric"]:
        _randomise_B(bank, seed=case["seed"])
    x = torch.randn(3, case["d_in"], dtype=torch.float32)
    W0 = bank.weight.detach().clone()
    for t in range(case["T"]):
        bank.active_task = t
        delta = bank.delta(t).detach()
        torch.testing.assert_close(bank(x), x @ (W0 + delta).T + bank.bias)
        if case["symmetric"]:
            torch.testing.assert_close(delta, delta.T)
        out = bank(x)
        bank.merge(t)
        torch.testing.assert_close(bank(x), out)
        bank.unmerge()
        torch.testing.assert_close(bank.weight.detach(), W0)
