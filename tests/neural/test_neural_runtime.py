"""Tests of lowrank_theory/neural/runtime.py: threads, devices, chunked (graph) stepping."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from lowrank_theory.neural.runtime import (  # noqa: E402
    GRAPH_WARMUP,
    available_cpus,
    check_device,
    cpu_threads,
    run_steps,
)


def test_cpu_threads_sets_and_restores():
    """Inside the block torch uses the requested (or every available) CPU; after it, the
    caller's setting is back, also when the block raises."""
    before = torch.get_num_threads()
    with cpu_threads() as n:
        assert n == available_cpus() == torch.get_num_threads()
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError, match="inside"), cpu_threads(1):
        assert torch.get_num_threads() == 1
        raise RuntimeError("inside")
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads must be >= 1"):
        cpu_threads(0).__enter__()


def test_check_device_names_the_problem():
    assert check_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="cpu, cuda"):
        check_device("tpu9")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            check_device("cuda")


@pytest.mark.parametrize("steps", [0, 1, 7, 10, 23])
def test_run_steps_eager_covers_every_step_once(steps):
    """Every step runs once, with its position in its chunk, and the chunk callbacks add up
    to the steps (the bookkeeping a captured graph relies on)."""
    positions, chunks = [], []
    mode = run_steps(positions.append, steps, torch.device("cpu"), chunk=5,
                     on_chunk=chunks.append)
    assert mode == "eager"
    assert sum(chunks) == steps == len(positions)
    assert positions == [i % 5 for i in range(steps)]
    with pytest.raises(ValueError, match="steps >= 0"):
        run_steps(positions.append, -1, torch.device("cpu"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graph_replay_equals_eager():
    """On CUDA, graph-replayed training (warm-up, replayed chunks, eager remainder) gives the
    eager loss history, to round-off."""
    from lowrank_theory.neural.shallow import init_stack, train_stack

    g = torch.Generator().manual_seed(0)
    X = torch.randn(4, 3, 50, 5, generator=g).cuda()
    y = torch.randn(4, 3, 50, generator=g).cuda()
    start = init_stack(5, 3, 1, [0, 1, 2, 3], [0, 1, 2, 3], torch.tensor([[0.0], [1.0]] * 2))
    steps = GRAPH_WARMUP + 2 * 10 + 4
    graph = train_stack(start, X, y, steps=steps, lr=1e-2, chunk=10, graph=True)
    eager = train_stack(start, X, y, steps=steps, lr=1e-2, chunk=10, graph=False)
    assert graph.mode == "cuda-graph" and eager.mode == "eager"
    np.testing.assert_allclose(graph.history, eager.history, rtol=1e-5, atol=1e-6)
    assert np.all(np.diff(graph.history[:, 1]) != 0)  # every step recorded, none stale
