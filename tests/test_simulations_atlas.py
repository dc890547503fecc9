"""Tests of simulations/atlas.py: the ``atlas`` experiment against direct calls of the library.

Compared: the run function's rows on a tiny cell against ``find_spurious_minimum``,
``certify_stationary_point`` and ``fit_lora_ml(method="paper")`` called family by family; the
catalogued family with a spurious minimum (counted) against a stub search that returns the
truth (not counted); a tight family (d = kT) whose protocol run converges, with the round it
takes and one round fewer (not reached).
"""

import contextlib

import numpy as np
import pandas as pd
import pytest
from lowrank_theory.simulations import atlas
from lowrank_theory.simulations.atlas import (
    COLUMNS,
    PROTOCOL_ENDS,
    atlas_rows,
    paper_start,
    protocol_rounds_to_tolerance,
    run_atlas,
)
from lowrank_theory.simulations.configs import RECOVERED, AtlasConfig, atlas_configs
from lowrank_theory.simulations.experiments import EXPERIMENTS, stream_seeds

import lowrank_theory as lt
from lowrank_theory.metrics import base_error
from lowrank_theory.stationary import certify_stationary_point
from lowrank_theory.theorems import (
    SPURIOUS_CATALOGUE,
    catalogued_spurious_family,
    find_spurious_minimum,
)

#: A tiny cell: d = kT, where spurious minima and slow runs both occur.
TINY = AtlasConfig(d=3, k=1, T=3, search_starts=2, rounds=4500)
#: A tight (d = kT = 3) family whose run from ``paper_start(family, 0)`` reaches A* ...
CONVERGING_FAMILY_SEED = 5
#: ... after exactly this many rounds (measured with protocol_rounds_to_tolerance).
CONVERGING_ROUNDS = 3389


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """As the runner's workers run: single-threaded BLAS on the small matrices."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        limits = contextlib.nullcontext()
    else:
        limits = threadpool_limits(limits=1)
    with limits:
        yield


@pytest.fixture(scope="module")
def tiny_table():
    # Seed 0's run needs more than TINY.rounds, seed 3's fewer: both kinds of row.
    return run_atlas(TINY, (0, 3))


def test_config_is_validated_and_reports_kT_over_d():
    with pytest.raises(ValueError, match="k must be <= d"):
        AtlasConfig(d=2, k=3)
    with pytest.raises(ValueError, match="search_starts"):
        AtlasConfig(search_starts=-1)
    with pytest.raises(TypeError, match="rounds"):
        AtlasConfig(rounds=3.0)
    assert AtlasConfig(d=4, k=2, T=5).columns()["kT_over_d"] == 2.5


def test_registered_sweeps_cover_the_grid_with_100_families_in_full():
    experiment = EXPERIMENTS["atlas"]
    cells = {(c.d, c.k, c.T) for c in experiment.full.configs}
    assert cells == {(d, k, T) for d in (3, 4, 6, 10, 20) for k in (1, 2) for T in (3, 5)}
    assert len(experiment.full.seeds) >= 100
    assert {c.rounds for c in experiment.full.configs} == {30_000}
    assert experiment.full.configs == atlas_configs(search_starts=10, rounds=30_000)
    assert len(experiment.quick.seeds) < len(experiment.full.seeds)


def test_table_is_tidy(tiny_table):
    assert list(tiny_table.columns) == list(COLUMNS)
    assert tiny_table["seed"].tolist() == [0, 3]
    assert set(tiny_table["protocol_end"]) <= set(PROTOCOL_ENDS)
    reached = tiny_table["protocol_reached"]
    assert (tiny_table.loc[reached, "protocol_end"] == "reached A*").all()
    assert tiny_table.loc[~reached, "protocol_rounds"].isna().all()
    # A spurious minimum found by the search is one found; the columns agree.
    assert (tiny_table["spurious"] >= tiny_table["spurious_search"]).all()
    assert tiny_table["spurious_objective"].notna().tolist() == tiny_table["spurious"].tolist()


def test_rows_match_direct_calls_of_the_library(tiny_table):
    """Each row is what the certificate, the search and fit_lora_ml(method="paper") give
    when called on the seed's family directly (same streams)."""
    outcomes = set()
    for row in tiny_table.itertuples():
        st = stream_seeds(row.seed, ("family", "search", "protocol"))
        fam = lt.TaskFamily.random(TINY.d, TINY.k, TINY.T, seed=st["family"])
        point = find_spurious_minimum(fam, TINY.k, n_starts=TINY.search_starts, seed=st["search"])
        assert row.spurious_search == (point is not None)
        if point is not None:
            cert = certify_stationary_point(fam, *point)
            assert cert.kind == "spurious local minimum"
            assert row.spurious_objective == pytest.approx(cert.objective, rel=1e-12)
            assert row.spurious_curvature == pytest.approx(
                cert.min_eigenvalue_modulo_symmetry / cert.hessian_norm, rel=1e-9)

        def error_after(r, fam=fam, st=st):
            fit = lt.fit_lora_ml(fam, TINY.k, method="paper", seed=st["protocol"], max_iter=r)
            return base_error(fit.A, fam.A_star, relative=True)

        if row.protocol_reached:
            r = int(row.protocol_rounds)
            assert error_after(r) < RECOVERED <= error_after(r - 1)
            assert row.protocol_base_error == pytest.approx(error_after(r), rel=1e-9)
        else:
            assert row.protocol_base_error == pytest.approx(error_after(TINY.rounds), rel=1e-9)
            assert row.protocol_base_error >= RECOVERED
        outcomes.add(row.protocol_reached)
    assert outcomes == {True, False}, "the tiny cell should hold both kinds of run"


def test_catalogued_spurious_family_is_counted():
    """Control: the catalogued family's spurious minimum is found from its start and counted,
    with a positive objective and a positive curvature margin."""
    rows = atlas_rows([catalogued_spurious_family()], [SPURIOUS_CATALOGUE["start_seed"]], [0],
                      search_starts=1, rounds=10)
    row = rows.iloc[0]
    assert row["spurious"] and row["spurious_search"]
    assert row["spurious_objective"] > 0.01 and row["spurious_curvature"] > 0


def test_a_search_that_returns_the_truth_is_not_counted(monkeypatch):
    """Falsifier: a stub search handing back the ground truth (a global minimum) must not make
    the family count as having a spurious minimum; the count rests on the certificate."""
    fam = catalogued_spurious_family()

    def truth(family, rank=None, n_starts=10, seed=0):
        return family.A_star, family.U_star

    monkeypatch.setattr(atlas, "find_spurious_minimum", truth)
    rows = atlas_rows([fam], [SPURIOUS_CATALOGUE["start_seed"]], [0], search_starts=1, rounds=10)
    assert not rows["spurious_search"][0]
    assert rows["spurious"][0] == (rows["protocol_end"][0] == "spurious local minimum")


def test_tight_family_that_converges_counts_as_reaching_A_star():
    """d = kT = 3, T = 3: the run reaches A* in CONVERGING_ROUNDS rounds; with one round fewer
    it does not, and its end polishes to the global minimum at A* (a slow run, not a stall)."""
    fam = lt.TaskFamily.random(3, 1, 3, seed=CONVERGING_FAMILY_SEED)
    assert fam.k * fam.T == fam.d
    rows = atlas_rows([fam], [0], [0], search_starts=0, rounds=CONVERGING_ROUNDS)
    assert rows["protocol_reached"][0] and rows["protocol_end"][0] == "reached A*"
    assert rows["protocol_rounds"][0] == CONVERGING_ROUNDS
    short = atlas_rows([fam], [0], [0], search_starts=0, rounds=CONVERGING_ROUNDS - 1)
    assert not short["protocol_reached"][0] and np.isnan(short["protocol_rounds"][0])
    assert short["protocol_end"][0] == "converging to A*"
    assert RECOVERED <= short["protocol_base_error"][0] < 1.01 * RECOVERED


def test_rounds_do_not_depend_on_the_check_interval_or_the_batch():
    """The first round below the tolerance is exact: checking every round, every 7 or every
    100 gives the same rounds and iterates, and a run gives the same alone or in a batch."""
    fams = [lt.TaskFamily.random(20, 1, 5, seed=s) for s in range(3)]
    U0 = np.stack([paper_start(f, s) for s, f in enumerate(fams)])
    traces = [protocol_rounds_to_tolerance(fams, U0, 800, check_every=c) for c in (1, 7, 100)]
    assert traces[0].reached.any() and not traces[0].reached.all()
    for other in traces[1:]:
        np.testing.assert_array_equal(other.rounds, traces[0].rounds)
        np.testing.assert_array_equal(other.A, traces[0].A)
    alone = protocol_rounds_to_tolerance(fams[1:2], U0[1:2], 800)
    assert alone.rounds[0] == traces[0].rounds[1]
    np.testing.assert_array_equal(alone.A[0], traces[0].A[1])


def test_a_diverging_run_does_not_stop_the_others():
    """Offsets 30 times larger make the paper's U-steps unstable; that run is marked diverged
    and the other run of the batch is the same as alone."""
    fam = lt.TaskFamily.random(20, 1, 5, seed=0)
    wild = lt.TaskFamily(fam.A_star, 30.0 * fam.U_star, fam.sigma)
    U0 = np.stack([paper_start(fam, 0), paper_start(wild, 1)])
    trace = protocol_rounds_to_tolerance([fam, wild], U0, 3000)
    alone = protocol_rounds_to_tolerance([fam], U0[:1], 3000)
    assert trace.diverged.tolist() == [False, True] and not trace.reached[1]
    assert np.isinf(trace.base_error[1]) and trace.rounds[1] < 3000
    assert trace.reached[0] and trace.rounds[0] == alone.rounds[0]
    rows = atlas_rows([fam, wild], [0, 0], [0, 1], search_starts=0, rounds=3000)
    assert rows["protocol_end"].tolist() == ["reached A*", "diverged"]


def test_inputs_are_validated():
    fams = [lt.TaskFamily.random(3, 1, 3, seed=0), lt.TaskFamily.random(4, 1, 3, seed=0)]
    with pytest.raises(ValueError, match="share"):
        protocol_rounds_to_tolerance(fams, np.zeros((2, 3, 3, 1)), 10)
    with pytest.raises(ValueError, match="shape"):
        protocol_rounds_to_tolerance(fams[:1], np.zeros((1, 3, 3, 2)), 10)
    with pytest.raises(ValueError, match="one entry each"):
        atlas_rows(fams[:1], [0, 1], [0], search_starts=0, rounds=1)


def test_run_is_deterministic():
    config = AtlasConfig(d=4, k=1, T=3, search_starts=1, rounds=200)
    pd.testing.assert_frame_equal(run_atlas(config, (0, 1)), run_atlas(config, (0, 1)))
