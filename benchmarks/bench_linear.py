"""Speed of the linear core against per-sample implementations of the paper's protocol.

Run: ``make bench`` or ``.venv/bin/python benchmarks/bench_linear.py [--rounds R] [--quick]``.
Prints markdown tables (pasted into README.md) and writes ``results/bench_linear.csv``.

Measured, all in one run, default config d=10, T=3, N=5000, k=1 (3000 rounds of 10 U-steps
and one A-step):

1. Two per-sample baselines, gradients formed from the N x d data at every step:
   ``naive`` (the straightforward transcription: the N x d layout, one transposed product per
   gradient) and ``vectorised`` (:func:`lowrank_theory.reference.paper_protocol_per_sample`:
   the authors' d x N layout, batched over tasks; the best per-sample numpy code we know).
2. The paper protocol on sufficient statistics (``fit_lora_ml(method="paper")``) under both
   conventions, with the largest difference of its iterates from the vectorised baseline
   run under the same convention, and the cost of one U-step and of one round's overhead.
3. The exact solver (population): time and recovery error.
4. The exact solver at scale (d up to 2000, T up to 40, k=8): time and peak traced memory.
5. The exact solver at many tasks (d=2000, k=8, T = 10, 20, 40, 100): seconds, alternating
   iterations and relative error of A, for the warm-started top-k eigenpairs (the default)
   and for full eigendecompositions of every task's matrix (``eigensolver="full"``, the
   method before; run up to ``--full-max-T``, its T x m x m arrays take 0.5 GB at T = 100),
   with their ratio.

The library timings of 2-3, and of d=2000, T=20 in 4, are taken twice: with the library's own
BLAS limit (one thread around its small-matrix loops, the default) and with that limit
switched off (BLAS's default threads), so the effect of the limit is measured in the same run. Times are the best of
``--repeat`` runs; the machine's load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import tracemalloc
from contextlib import contextmanager

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_info

import lowrank_theory as lt
import lowrank_theory._threads as threads
from lowrank_theory.reference import paper_protocol_per_sample
from lowrank_theory.span import fit_exact_span

D, T, N, K = 10, 3, 5000, 1


@contextmanager
def library_threads(mode: str):
    """``auto``: the library's limit (default); ``default``: the limit switched off."""
    saved = threads.SINGLE_THREAD_MAX_DIM
    if mode == "default":
        threads.SINGLE_THREAD_MAX_DIM = -1  # every problem counts as large: no limit
    try:
        yield
    finally:
        threads.SINGLE_THREAD_MAX_DIM = saved


def best_time(fn, repeat: int) -> tuple[float, object]:
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def naive_per_sample(data: lt.TaskData, rounds: int, seed: int) -> np.ndarray:
    """The straightforward per-sample transcription ("sum" convention, symmetric, k=1)."""
    rng = np.random.default_rng(seed)
    A = np.zeros((data.d, data.d))
    U = 0.1 * rng.standard_normal((data.T, data.d, 1))
    for _ in range(rounds):
        for _ in range(10):
            W = A + U @ np.swapaxes(U, 1, 2)
            E = data.X @ np.swapaxes(W, 1, 2) - data.Y
            G = 2.0 * np.swapaxes(E, 1, 2) @ data.X / data.n
            U = U - 0.003 * ((G + np.swapaxes(G, 1, 2)) @ U)
        E = data.X @ np.swapaxes(A + U @ np.swapaxes(U, 1, 2), 1, 2) - data.Y
        A = A - 0.03 * (2.0 * np.swapaxes(E, 1, 2) @ data.X / data.n).sum(axis=0)
    return A


def bench_paper(rounds: int, repeat: int) -> list[dict]:
    fam = lt.TaskFamily.random(d=D, k=K, T=T, sigma=0.1, seed=0)
    data = fam.sample(N, seed=1)
    rows = []
    t_naive, A_naive = best_time(lambda: naive_per_sample(data, rounds, 0), 1)
    rows.append(dict(case="per-sample, naive (N x d layout)", convention="sum", threads="default",
                     seconds=t_naive))
    refs = {}
    for conv in ("paper", "sum"):
        t_vec, refs[conv] = best_time(
            lambda conv=conv: paper_protocol_per_sample(data, K, 0, rounds, convention=conv), 1
        )
        rows.append(dict(case="per-sample, vectorised (reference.py)", convention=conv,
                         threads="default", seconds=t_vec))
        if conv == "sum":
            rows[-1]["max_iterate_diff"] = float(np.abs(A_naive - refs[conv][0]).max())
    t_base = {r["convention"]: r["seconds"] for r in rows if "vectorised" in r["case"]}
    for conv in ("paper", "sum"):
        for mode in ("auto", "default"):
            with library_threads(mode):
                t, fit = best_time(lambda conv=conv: lt.fit_lora_ml(
                    data, k=K, method="paper", seed=0, max_iter=rounds, convention=conv), repeat)
                t_rounds, _ = best_time(lambda conv=conv: lt.fit_lora_ml(
                    data, k=K, method="paper", seed=0, max_iter=rounds, inner_steps=0,
                    convention=conv), repeat)
            A_ref, (U_ref,) = refs[conv]
            rows.append(dict(
                case="paper protocol, statistics", convention=conv, threads=mode, seconds=t,
                speedup_vs_vectorised=t_base[conv] / t, speedup_vs_naive=t_naive / t,
                max_iterate_diff=max(np.abs(fit.A - A_ref).max(), np.abs(fit.U - U_ref).max()),
                us_per_U_step=(t - t_rounds) / (10 * rounds) * 1e6,
                us_per_round_overhead=t_rounds / rounds * 1e6,
            ))
    for mode in ("auto", "default"):
        with library_threads(mode):
            t_exact, exact = best_time(lambda: lt.fit_lora_ml(fam, k=K), 5 * repeat)
        rows.append(dict(
            case="exact solver, population", threads=mode, seconds=t_exact,
            speedup_vs_vectorised=t_base["sum"] / t_exact, speedup_vs_naive=t_naive / t_exact,
            rel_error=lt.metrics.base_error(exact.A, fam.A_star, relative=True),
        ))
    return rows


def bench_scale(grid: list[tuple[int, int, int]], repeat: int,
                compare: tuple[tuple[int, int, int], ...]) -> list[dict]:
    rows = []
    for d, T_, k in grid:
        fam = lt.TaskFamily.random(d=d, k=k, T=T_, seed=0)
        # BLAS's default threads can be 30x slower on a busy machine: compared on `compare` only.
        for mode in ("auto", "default") if (d, T_, k) in compare else ("auto",):
            with library_threads(mode):
                lt.fit_lora_ml(fam, k=k)  # warm-up: BLAS threads, caches
                seconds, fit = best_time(lambda fam=fam, k=k: lt.fit_lora_ml(fam, k=k), repeat)
                tracemalloc.start()
                lt.fit_lora_ml(fam, k=k)
                _, peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
            rows.append(dict(
                case="exact solver at scale", threads=mode, d=d, T=T_, k=k, seconds=seconds,
                peak_MB=peak / 2**20, peak_in_dxd=peak / (8 * d * d),
                rel_error=lt.metrics.base_error(fit.A, fam.A_star, relative=True),
            ))
            print(f"  d={d:5d} T={T_:3d} k={k} threads={mode:7s}: {seconds:.3f} s, "
                  f"peak {peak / 2**20:.1f} MiB", flush=True)
    return rows


def bench_tasks(Ts: list[int], repeat: int, full_max_T: int) -> list[dict]:
    """The exact solver at d=2000, k=8 for each T: warm top-k eigenpairs against full eigh."""
    d, k = 2000, 8
    rows = []
    for T_ in Ts:
        fam = lt.TaskFamily.random(d=d, k=k, T=T_, seed=0)
        for eigensolver in ("warm", "full"):
            if eigensolver == "full" and T_ > full_max_T:
                continue
            solve = lambda fam=fam, e=eigensolver: fit_exact_span(fam, k, eigensolver=e)  # noqa: E731
            seconds, fit = best_time(solve, repeat if T_ <= 40 else 1)
            rows.append(dict(
                case="exact solver, many tasks", eigensolver=eigensolver, d=d, T=T_, k=k,
                seconds=seconds, iterations=fit.n_iter,
                rel_error=lt.metrics.base_error(fit.A, fam.A_star, relative=True),
            ))
            print(f"  T={T_:3d} eigensolver={eigensolver}: {seconds:.3f} s, "
                  f"{fit.n_iter} iterations, relative error {rows[-1]['rel_error']:.2g}",
                  flush=True)
    return rows


def tasks_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per T: the warm solver's seconds, iterations and error, and the full one's."""
    warm = rows[rows.eigensolver == "warm"].set_index("T")
    full = rows[rows.eigensolver == "full"].set_index("T")
    table = pd.DataFrame({
        "seconds": warm.seconds, "iterations": warm.iterations, "rel_error": warm.rel_error,
        "full_eigh_seconds": full.seconds, "full_eigh_rel_error": full.rel_error,
    })
    table["speedup"] = table.full_eigh_seconds / table.seconds
    return table.reset_index()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3000, help="paper protocol rounds")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many library runs")
    parser.add_argument("--quick", action="store_true", help="small scale grid only")
    parser.add_argument("--out", default="results/bench_linear.csv")
    parser.add_argument("--tasks", default=None,
                        help="T values of the many-tasks table, d=2000, k=8 (default "
                             "10,20,40,100; 10,20 with --quick)")
    parser.add_argument("--full-max-T", type=int, default=40,
                        help="largest T at which the full-eigendecomposition solver is timed")
    args = parser.parse_args()

    blas = [(i["internal_api"], i["num_threads"]) for i in threadpool_info()
            if i["user_api"] == "blas"]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"numpy {np.__version__}, BLAS {blas}; load average before: {os.getloadavg()}")
    rows = bench_paper(args.rounds, args.repeat)
    if args.quick:
        grid = [(500, 10, 4), (2000, 20, 8)]
    else:
        grid = [(250, 20, 8), (500, 20, 8), (1000, 20, 8), (2000, 20, 8),
                (2000, 5, 8), (2000, 10, 8), (2000, 40, 8)]
    rows += bench_scale(grid, args.repeat, compare=((2000, 20, 8),))
    tasks = args.tasks or ("10,20" if args.quick else "10,20,40,100")
    Ts = [int(t) for t in tasks.split(",") if t]
    rows += bench_tasks(Ts, args.repeat, args.full_max_T)
    print(f"load average after: {os.getloadavg()}")
    df = pd.DataFrame(rows)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    df.to_csv(args.out, index=False)
    head = df[~df.case.isin(["exact solver at scale", "exact solver, many tasks"])]
    head = head.dropna(axis=1, how="all")
    print(head.to_markdown(index=False, floatfmt=".3g"))
    scale = df[df.case == "exact solver at scale"][
        ["d", "T", "k", "threads", "seconds", "peak_MB", "peak_in_dxd", "rel_error"]
    ]
    print(scale.to_markdown(index=False, floatfmt=".3g"))
    tasks = df[df.case == "exact solver, many tasks"]
    if len(tasks):
        print(tasks_table(tasks).to_markdown(index=False, floatfmt=".3g"))


if __name__ == "__main__":
    main()
