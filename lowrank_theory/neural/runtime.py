"""Where and how a training loop runs: the device, the CPU thread count, CUDA-graph replay.

Full-batch training of small networks is bound by per-step overhead, not arithmetic: one step
launches tens of tiny kernels. Two levers remove most of it:

- :func:`cpu_threads` gives torch's intra-op pool one thread per CPU this process may use
  (``os.sched_getaffinity``), and restores the previous count afterwards, so no environment
  variable is needed and a caller's setting is never leaked or overridden for good.
- :func:`run_steps` runs ``steps`` calls of a fixed-shape step function; on CUDA it captures a
  chunk of steps as one CUDA graph (``torch.cuda.CUDAGraph``) and replays it, so a chunk costs
  one launch instead of hundreds. Everything the step touches must be allocated before the
  capture and keep its shape (full-batch loops over fixed tensors qualify; mini-batch loops that
  draw indices on the host do not). On CPU and MPS the steps run eagerly.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator

import torch

__all__ = [
    "GRAPH_CHUNK",
    "GRAPH_WARMUP",
    "available_cpus",
    "cpu_threads",
    "check_device",
    "run_steps",
]

#: Steps captured in one CUDA graph. Longer chunks amortise the replay launch further but
#: take longer to capture; at 100 a chunk's launch overhead is already below 1% of its work.
GRAPH_CHUNK = 100
#: Eager steps run on a side stream before a capture: the autograd engine and the optimiser
#: must have allocated their state (the pattern of the CUDA-graph section of torch's docs).
GRAPH_WARMUP = 3

StepFn = Callable[[int], None]


def available_cpus() -> int:
    """Number of CPUs this process may run on (its affinity mask; ``os.cpu_count()`` elsewhere)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # pragma: no cover - macOS and Windows have no affinity call
        return max(os.cpu_count() or 1, 1)


@contextlib.contextmanager
def cpu_threads(threads: int | None = None) -> Iterator[int]:
    """Set torch's intra-op thread count for the block, then restore the previous one.

    Parameters
    ----------
    threads : int, optional
        Threads to use; default :func:`available_cpus`.

    Yields
    ------
    int
        The thread count in effect inside the block.

    Raises
    ------
    ValueError
        If ``threads < 1``.
    """
    n = available_cpus() if threads is None else int(threads)
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(previous)


def check_device(device: str | torch.device) -> torch.device:
    """Return ``torch.device(device)`` after checking that torch can use it.

    Raises
    ------
    ValueError
        If the string is not a device, or names CUDA / MPS that this torch cannot see; the
        message says which devices are usable.
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be cpu, cuda, cuda:N or mps; got {device!r}") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r}: torch {torch.__version__} sees no CUDA GPU; "
                             "use device='cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: only {torch.cuda.device_count()} CUDA "
                             "device(s) visible")
    elif dev.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ValueError(f"device {device!r}: MPS is not available; use device='cpu'")
    elif dev.type != "cpu":
        raise ValueError(f"device must be cpu, cuda, cuda:N or mps; got {device!r}")
    return dev


def run_steps(
    step: StepFn,
    steps: int,
    device: torch.device,
    *,
    graph: bool = True,
    chunk: int = GRAPH_CHUNK,
    on_chunk: Callable[[int], None] | None = None,
) -> str:
    """Call ``step(i)`` for ``i = 0 .. steps - 1``, as replayed CUDA graphs where possible.

    Parameters
    ----------
    step : callable
        ``step(j)`` performs one training step in place. ``j`` is the step's position inside
        its chunk (``0 <= j < chunk``), so a step may record into a static per-chunk buffer;
        in a captured graph ``j`` is frozen at capture time, which is why the step receives
        the position and not the global index.
    steps : int
        Number of steps (>= 0).
    device : torch.device
        Where the step's tensors live.
    graph : bool, default True
        Capture chunks as CUDA graphs when ``device`` is CUDA and there are at least
        ``GRAPH_WARMUP + chunk`` steps; otherwise (and on CPU / MPS) run eagerly.
    chunk : int, default GRAPH_CHUNK
        Steps per chunk (and per graph).
    on_chunk : callable, optional
        ``on_chunk(n)`` after every chunk of ``n`` steps (eager or replayed): the step's
        per-chunk buffers hold that chunk's first ``n`` records. Also used for progress bars.

    Returns
    -------
    str
        ``"cuda-graph"`` or ``"eager"``: how the bulk of the steps ran (a capture that fails
        falls back to eager steps with a ``RuntimeWarning``).

    Notes
    -----
    Graph replays run the kernels recorded at capture, so every step in a replay computes
    exactly what the same eager step computes; the loop is only rearranged as: warm-up steps
    (eager, on a side stream), full chunks (one graph, replayed), the remainder (eager).
    """
    if steps < 0 or chunk < 1:
        raise ValueError(f"need steps >= 0 and chunk >= 1, got steps={steps}, chunk={chunk}")

    def eager(n: int) -> None:
        for j in range(n):
            step(j)
        if on_chunk is not None and n:
            on_chunk(n)

    use_graph = graph and device.type == "cuda" and steps >= GRAPH_WARMUP + chunk
    if not use_graph:
        for start in range(0, steps, chunk):
            eager(min(chunk, steps - start))
        return "eager"

    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        eager(GRAPH_WARMUP)
    torch.cuda.current_stream(device).wait_stream(side)
    done = GRAPH_WARMUP
    cuda_graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(cuda_graph):
            for j in range(chunk):
                step(j)
    except RuntimeError as exc:
        # A capture records kernels without running them, so a failed one leaves the
        # training state as it was: the steps still run, only without the speed-up.
        warnings.warn(f"CUDA graph capture failed ({exc}); running the steps eagerly",
                      RuntimeWarning, stacklevel=2)
        torch.cuda.synchronize(device)
        for start in range(done, steps, chunk):
            eager(min(chunk, steps - start))
        return "eager"
    while steps - done >= chunk:
        cuda_graph.replay()
        done += chunk
        if on_chunk is not None:
            on_chunk(chunk)
    eager(steps - done)
    return "cuda-graph"
