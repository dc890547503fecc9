"""Speed of the neural experiments: batched against one-model-at-a-time, graphs against eager.

Run: ``python benchmarks/bench_neural.py [--devices cpu cuda] [--quick]`` from the repository
root (``PYTHONPATH=.`` if the project is not installed). Everything is measured in this one run,
on every available device (cpu; cuda if torch sees a GPU):

1. Shallow network at paper size (N = 1000, n = 100; 10 seeds x {SR, LoRA-ML} = 20 models in one
   stack), for each of the six (d, T) settings: retraining and fine-tuning steps/s, eager and
   (CUDA) graph-replayed; and the old loop (one ``ShallowNet``, ``methods.lora_ml``, T backward
   passes per step) at d = 10, T = 3 as the baseline.
2. MLP-Mixer at paper size (width 512, patch 4, 32 x 32 x 3 inputs, batch 256, synthetic data):
   one model with ``methods.standard_retraining``, and 5 seeds stacked with
   ``stacked.stacked_training``.
3. The projected wall time of each paper-size experiment from those rates.

Rates are marginal: (n2 - n1) steps divided by the time difference of two runs of n1 and n2
steps, so set-up and graph capture are left out. ``model-steps/s`` counts every model of a stack.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch
from lowrank_theory.simulations.neural.configs import ShallowConfig, VisionConfig, shallow_sweep
from torch.nn import functional as F

from lowrank_theory.neural import methods as M
from lowrank_theory.neural.data import TaskSet
from lowrank_theory.neural.models import MLPMixer, ShallowNet, seeded
from lowrank_theory.neural.runtime import GRAPH_CHUNK, GRAPH_WARMUP, available_cpus, cpu_threads
from lowrank_theory.neural.shallow import init_stack, train_stack
from lowrank_theory.neural.stacked import stacked_training

SEEDS = 10
METHODS = 2


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def marginal_rate(run, n1: int, n2: int, device: torch.device, repeat: int = 3) -> float:
    """Steps per second of ``run(n)`` between n1 and n2 steps (set-up excluded).

    Each length is timed ``repeat`` times and the fastest kept (other processes only ever
    slow a run down); if the difference is not positive, the plain rate of n2 steps is used.
    """
    best = []
    for n in (n1, n2):
        times = []
        for _ in range(repeat):
            _sync(device)
            t0 = time.perf_counter()
            run(n)
            _sync(device)
            times.append(time.perf_counter() - t0)
        best.append(min(times))
    if best[1] <= best[0]:
        return n2 / best[1]
    return (n2 - n1) / (best[1] - best[0])


def shallow_inputs(config: ShallowConfig, models: int, tasks: int, n: int, device):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(models, tasks, n, config.d, generator=g).to(device)
    y = torch.randn(models, tasks, n, generator=g).to(device)
    return X, y


def stack_rate(start, X, y, train_base: bool, graph: bool, base: int, extra: int) -> float:
    """Marginal steps/s of :func:`train_stack` on (X, y) from ``start``."""
    def run(n: int) -> None:
        train_stack(start, X, y, steps=n, lr=1e-3, train_base=train_base, graph=graph)

    return marginal_rate(run, base, base + extra, X.device)


def bench_shallow(device: torch.device, graph: bool, quick: bool) -> list[dict]:
    """Retraining and fine-tuning rates of every paper-size setting."""
    rows = []
    cuda_graph = graph and device.type == "cuda"
    base = GRAPH_WARMUP + GRAPH_CHUNK if cuda_graph else 3
    extra = (10 if quick else 20) * GRAPH_CHUNK if cuda_graph else (
        (30 if quick else 150) if device.type == "cpu" else 300)
    for config in shallow_sweep("paper").configs:
        M_ret = SEEDS * METHODS
        M_ft = M_ret * len(config.finetune_ranks)
        R = max(config.finetune_ranks)
        X, y = shallow_inputs(config, M_ret, config.T, config.N, device)
        start = init_stack(config.d, config.T, config.k, list(range(M_ret)), list(range(M_ret)),
                           torch.ones(M_ret, config.k))
        ret = stack_rate(start, X, y, True, graph, base, extra)
        Xf, yf = shallow_inputs(config, M_ft, 1, config.n, device)
        ft_start = init_stack(config.d, 1, R, list(range(M_ft)), list(range(M_ft)),
                              torch.ones(M_ft, R))
        ft = stack_rate(ft_start, Xf, yf, False, graph, base, extra)
        seconds = config.retrain_steps / ret + config.finetune_steps / ft
        print(f"{device.type} {'cuda-graph' if cuda_graph else 'eager'} d={config.d} "
              f"T={config.T}: retrain {ret:,.0f} steps/s, fine-tune {ft:,.0f} steps/s",
              flush=True)
        rows.append({"device": device.type, "mode": "cuda-graph" if cuda_graph else "eager",
                     "d": config.d, "T": config.T, "models": M_ret,
                     "retrain steps/s": ret, "finetune steps/s": ft,
                     "retrain model-steps/s": ret * M_ret, "paper seconds": seconds})
    return rows


def bench_shallow_old(device: torch.device, quick: bool) -> dict:
    """The old loop: one ShallowNet, LoRA-ML with T backward passes per step (d=10, T=3)."""
    g = torch.Generator().manual_seed(0)
    tasks = TaskSet(tuple((torch.randn(1000, 10, generator=g), torch.randn(1000, generator=g))
                          for _ in range(3))).to(device)

    def run(n: int) -> None:
        with seeded(0):
            model = ShallowNet(10).to(device)
        M.lora_ml(model, tasks, F.mse_loss, rank=1, steps=n, target_modules=["hidden"])

    n = 100 if quick else 400
    rate = marginal_rate(run, 5, 5 + n, device)
    return {"device": device.type, "mode": "old loop", "d": 10, "T": 3, "models": 1,
            "retrain steps/s": rate, "retrain model-steps/s": rate}


def bench_mixer(device: torch.device, quick: bool) -> list[dict]:
    """Paper-size Mixer: one model, and 5 seeds stacked; SR steps at batch 256.

    On CPU these are large matrix products, so they run on every available CPU (the thread
    count is in the ``mode`` column) and with few steps (a stacked step takes seconds).
    """
    config = VisionConfig()
    g = torch.Generator().manual_seed(0)
    images = torch.randn(256, 3, 32, 32, generator=g)
    labels = (torch.rand(256, generator=g) < 0.5).float()
    tasks = TaskSet(((images, labels),)).to(device)

    def model(seed: int):
        with seeded(seed):
            return MLPMixer(32, 3, config.patch, config.width, config.depth,
                            config.token_hidden, config.channel_hidden).to(device)

    def single(n: int) -> None:
        M.standard_retraining(model(0), tasks, F.binary_cross_entropy_with_logits, steps=n)

    def stacked(n: int) -> None:
        stacked_training([model(s) for s in range(5)], [tasks] * 5,
                         F.binary_cross_entropy_with_logits, steps=n, lr=1e-4, seeds=range(5))

    if device.type == "cpu":
        with cpu_threads() as threads:
            one = marginal_rate(single, 1, 2 if quick else 3, device, 1)
            five = marginal_rate(stacked, 1, 2, device, 1)
        note = f", {threads} threads"
    else:
        one = marginal_rate(single, 1, 51, device)
        five = marginal_rate(stacked, 1, 51, device)
        note = ""
    print(f"{device.type} Mixer: one model {one:.2f} steps/s, 5 stacked {five:.2f} steps/s",
          flush=True)
    return [
        {"device": device.type, "mode": f"one model{note}", "models": 1, "steps/s": one,
         "model-steps/s": one},
        {"device": device.type, "mode": f"5 seeds stacked{note}", "models": 5, "steps/s": five,
         "model-steps/s": 5 * five},
    ]


def check_graph(device: torch.device) -> str:
    """Largest |loss difference| between graph-replayed and eager training (d=10, T=3, 500 steps).

    Both run the same kernels, so they should agree to round-off; a stale buffer or a step
    missed by the replay would show here.
    """
    config = ShallowConfig()
    X, y = shallow_inputs(config, 4, config.T, config.N, device)
    start = init_stack(config.d, config.T, 1, [0, 1, 2, 3], [0, 1, 2, 3],
                       torch.tensor([[0.0], [1.0], [0.0], [1.0]]))
    graph = train_stack(start, X, y, steps=500, lr=1e-3, graph=True)
    eager = train_stack(start, X, y, steps=500, lr=1e-3, graph=False)
    diff = float(np.abs(graph.history - eager.history).max())
    return f"{diff:.2e} (modes: {graph.mode} vs {eager.mode})"


def lpt_makespan(durations: list[float], workers: int) -> float:
    """Wall time of ``durations`` on ``workers`` processes, longest first (the runner's order)."""
    loads = [0.0] * max(workers, 1)
    for d in sorted(durations, reverse=True):
        loads[loads.index(min(loads))] += d
    return max(loads)


def vision_paper_seconds(mixer: list[dict]) -> float:
    """Paper-size vision time from the Mixer rates (5 seeds; batch-256 equivalents).

    SR, LoRA-ML and last-layer ML: ``retrain_steps`` stacked steps of 4 tasks x 64 images; 8
    fine-tuning runs (4 methods x 2 modes) of ``finetune_steps`` stacked steps of 256; Reptile
    one model at a time on the same budget. Adapters and heads are not counted (a few %).
    """
    config = VisionConfig()
    stacked = next(r for r in mixer if r["models"] == 5)["steps/s"]
    single = next(r for r in mixer if r["models"] == 1)["steps/s"]
    n_stacked = 3 * config.retrain_steps + 8 * config.finetune_steps
    return n_stacked / stacked + 5 * config.retrain_steps / single


def fmt_table(rows: list[dict], columns: list[str]) -> str:
    def cell(v):
        return f"{v:,.1f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", nargs="+", default=None,
                        help="devices to measure (default: cpu, and cuda if available)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads for the CPU measurements (default 1: one "
                             "worker process of the runner)")
    parser.add_argument("--quick", action="store_true", help="fewer steps per measurement")
    args = parser.parse_args()
    devices = args.devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"torch {torch.__version__}, python {platform.python_version()}, "
          f"{available_cpus()} CPUs available ({os.cpu_count()} on the machine), GPU: {gpu}; "
          f"CPU measurements with {args.threads} thread(s)\n", flush=True)
    shallow, old, mixer = [], [], []
    with cpu_threads(args.threads):
        for name in devices:
            device = torch.device(name)
            shallow += bench_shallow(device, graph=False, quick=args.quick)
            if device.type == "cuda":
                shallow += bench_shallow(device, graph=True, quick=args.quick)
                print(f"{name}: graph vs eager, largest loss difference over 500 steps: "
                      f"{check_graph(device)}", flush=True)
            old.append(bench_shallow_old(device, args.quick))
            mixer += bench_mixer(device, args.quick)
            print(f"measured {name}", flush=True)

    print("\n## Shallow network, paper size (10 seeds x {SR, LoRA-ML} per stack)\n")
    print(fmt_table(shallow + old, ["device", "mode", "d", "T", "models", "retrain steps/s",
                                    "finetune steps/s", "retrain model-steps/s",
                                    "paper seconds"]))
    print("\n## MLP-Mixer, paper size (width 512, patch 4, 32x32x3, batch 256)\n")
    print(fmt_table(mixer, ["device", "mode", "models", "steps/s", "model-steps/s"]))

    print("\n## Ratios (same run)\n")
    for name in devices:
        base = next(r for r in old if r["device"] == name)["retrain model-steps/s"]
        centre = [r for r in shallow if r["device"] == name and (r["d"], r["T"]) == (10, 3)]
        for r in centre:
            print(f"- {name} shallow d=10 T=3, {r['mode']} batched vs old loop (model-steps/s): "
                  f"{r['retrain model-steps/s'] / base:.1f}x")
        graph = [r for r in centre if r["mode"] == "cuda-graph"]
        eager = [r for r in centre if r["mode"] == "eager"]
        if graph and eager:
            print(f"- {name} shallow d=10 T=3, CUDA graph vs eager (steps/s): "
                  f"{graph[0]['retrain steps/s'] / eager[0]['retrain steps/s']:.1f}x")
        mix = {r["models"]: r["model-steps/s"] for r in mixer if r["device"] == name}
        print(f"- {name} Mixer, 5 stacked vs one at a time (model-steps/s): "
              f"{mix[5] / mix[1]:.2f}x")

    print("\n## Projected wall time of the paper-size experiments\n")
    projections = {}
    for name in devices:
        for mode in ("eager", "cuda-graph"):
            rows = [r for r in shallow if r["device"] == name and r["mode"] == mode]
            if not rows:
                continue
            durations = [r["paper seconds"] for r in rows]
            one = sum(durations)
            projections[(name, mode)] = one
            line = f"- shallow on {name} ({mode}): {one / 60:.1f} min in one process"
            if name == "cpu":
                jobs = min(available_cpus(), len(rows))
                line += (f", {lpt_makespan(durations, jobs) / 60:.1f} min with {jobs} worker "
                         "processes (one thread each, the command line's default)")
            print(line)
        seconds = vision_paper_seconds([r for r in mixer if r["device"] == name])
        print(f"- vision on {name}: {seconds / 60:.1f} min (5 seeds, from the Mixer rates)")
    print("- language: not measured (needs roberta-base weights and ConvAI2)")
    if ("cuda", "cuda-graph") in projections and ("cpu", "eager") in projections:
        ratio = projections[("cpu", "eager")] / projections[("cuda", "cuda-graph")]
        print(f"- shallow, CUDA graphs vs one CPU process: {ratio:.1f}x faster")


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
