"""Speed of the linear core against a per-sample reimplementation of the paper's protocol.

Run: ``make bench`` or ``.venv/bin/python benchmarks/bench_linear.py [--rounds R] [--quick]``.
Prints markdown tables (pasted into README.md) and writes ``results/bench_linear.csv``.

Measured, all in one run, default config d=10, T=3, N=5000, k=1:
1. the paper protocol on sufficient statistics vs the same protocol with per-sample gradients
   (the authors' way), and the largest difference between their iterates;
2. the fast exact solver (population) vs the per-sample paper protocol, with its recovery error;
3. the exact solver at scale (d up to 2000, T up to 40, k=8): time and peak traced memory.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import tracemalloc

import numpy as np
import pandas as pd

import lowrank_theory as lt
from lowrank_theory.reference import paper_protocol_per_sample


def best_time(fn, repeat: int) -> tuple[float, object]:
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench_paper(rounds: int) -> list[dict]:
    fam = lt.TaskFamily.random(d=10, k=1, T=3, sigma=0.1, seed=0)
    data = fam.sample(5000, seed=1)
    t_ref, (A_ref, (U_ref,)) = best_time(
        lambda: paper_protocol_per_sample(data, 1, seed=0, rounds=rounds), 1
    )
    t_fast, fit = best_time(
        lambda: lt.fit_lora_ml(data, k=1, method="paper", seed=0, max_iter=rounds), 3
    )
    diff = max(np.abs(fit.A - A_ref).max(), np.abs(fit.U - U_ref).max())
    t_exact, exact = best_time(lambda: lt.fit_lora_ml(fam, k=1), 5)
    rel = lt.metrics.base_error(exact.A, fam.A_star, relative=True)
    return [
        dict(case="paper protocol, per-sample (reference)", rounds=rounds, seconds=t_ref),
        dict(case="paper protocol, sufficient statistics", rounds=rounds, seconds=t_fast,
             speedup=t_ref / t_fast, max_iterate_diff=diff),
        dict(case="exact solver, population", seconds=t_exact, speedup=t_ref / t_exact,
             rel_error=rel),
    ]


def bench_scale(grid: list[tuple[int, int, int]]) -> list[dict]:
    rows = []
    for d, T, k in grid:
        fam = lt.TaskFamily.random(d=d, k=k, T=T, seed=0)
        lt.fit_lora_ml(fam, k=k)  # warm-up: BLAS threads, caches
        seconds, fit = best_time(lambda fam=fam, k=k: lt.fit_lora_ml(fam, k=k), 3)
        tracemalloc.start()
        lt.fit_lora_ml(fam, k=k)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rows.append(dict(
            case="exact solver at scale", d=d, T=T, k=k, seconds=seconds,
            peak_MB=peak / 2**20, peak_in_dxd=peak / (8 * d * d),
            rel_error=lt.metrics.base_error(fit.A, fam.A_star, relative=True),
        ))
        print(f"  d={d:5d} T={T:3d} k={k}: {seconds:.3f} s, peak {peak / 2**20:.1f} MiB", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3000, help="paper protocol rounds")
    parser.add_argument("--quick", action="store_true", help="small scale grid only")
    parser.add_argument("--out", default="results/bench_linear.csv")
    args = parser.parse_args()

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"numpy {np.__version__}")
    rows = bench_paper(args.rounds)
    if args.quick:
        grid = [(500, 10, 4), (1000, 20, 8)]
    else:
        grid = [(250, 20, 8), (500, 20, 8), (1000, 20, 8), (2000, 20, 8),
                (2000, 5, 8), (2000, 10, 8), (2000, 40, 8)]
    rows += bench_scale(grid)
    df = pd.DataFrame(rows)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    df.to_csv(args.out, index=False)
    head = df[df.case != "exact solver at scale"].dropna(axis=1, how="all")
    print(head.to_markdown(index=False, floatfmt=".3g"))
    scale = df[df.case == "exact solver at scale"][
        ["d", "T", "k", "seconds", "peak_MB", "peak_in_dxd", "rel_error"]
    ]
    print(scale.to_markdown(index=False, floatfmt=".3g"))


if __name__ == "__main__":
    main()
