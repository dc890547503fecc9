"""The solvers' small-problem BLAS limit."""

import contextlib

from threadpoolctl import threadpool_info, threadpool_limits

import lowrank_theory as lt
import lowrank_theory.adaptation
import lowrank_theory.lora_ml
import lowrank_theory.span
from lowrank_theory._threads import SINGLE_THREAD_MAX_DIM, blas_threads_for


def _blas_threads():
    return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}


def test_one_thread_inside_for_small_problems_and_restored_after():
    with threadpool_limits(2, user_api="blas"):
        before = _blas_threads()
        with blas_threads_for(10):
            assert _blas_threads() == {1}
        assert _blas_threads() == before
        with blas_threads_for(SINGLE_THREAD_MAX_DIM + 1):  # large: left alone
            assert _blas_threads() == before


def test_solvers_enter_the_limit_once_with_their_matrix_size(monkeypatch):
    calls = []

    def spy(dim):
        calls.append(dim)
        return contextlib.nullcontext()

    monkeypatch.setattr(lowrank_theory.lora_ml, "blas_threads_for", spy)
    monkeypatch.setattr(lowrank_theory.span, "blas_threads_for", spy)
    monkeypatch.setattr(lowrank_theory.adaptation, "blas_threads_for", spy)
    fam = lt.TaskFamily.random(d=30, k=2, T=3, seed=0)
    lt.fit_lora_ml(fam, k=2)  # span reduction: m = kT = 6
    lt.fit_lora_ml(fam.sample(40, seed=1), k=2, method="paper", max_iter=5)
    lt.fine_tune(fam.A_star, fam.new_task(seed=2), method="gd", steps=5)
    assert calls == [6, 30, 30]


def test_the_warm_span_path_runs_on_one_thread_for_its_blocks(monkeypatch):
    """A span large enough for warm eigenpairs enters the limit once, with its block size (one
    thread: its work is batched m x p blocks), not with m; the dense path uses m."""
    calls = []

    def spy(dim):
        calls.append(dim)
        return contextlib.nullcontext()

    monkeypatch.setattr(lowrank_theory.span, "blas_threads_for", spy)
    fam = lt.TaskFamily.random(d=60, k=2, T=10, seed=0)  # m = 20, block 4
    lt.fit_lora_ml(fam, k=2)
    lowrank_theory.span.fit_exact_span(fam, 2, eigensolver="full")
    assert calls == [4, 20]
