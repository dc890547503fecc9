"""Tests of figures/: every figure draws from a small synthetic table alone."""

import re

import matplotlib
import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from lowrank_theory.figures import FIGURES, make_figures, publish
from lowrank_theory.figures.io import read_table
from lowrank_theory.figures.make import FigureSpec
from lowrank_theory.figures.plots import plot_landscape, plot_phase, plot_rate
from lowrank_theory.figures.style import METHOD_STYLE, OKABE_ITO
from lowrank_theory.figures.vary import plot_vary, plot_vary_quirks, vary_panel_rows
from lowrank_theory.simulations.configs import VARY_DEFAULTS, VARY_VALUES

matplotlib.use("Agg")


def vary_table(steps=20, seeds=(0, 1)):
    """A vary table shaped like the experiment's: every panel point, the d sweep with fewer
    steps than the default point, and the quirks runs of the T sweep (with the authors' SR)."""
    points = {tuple({**VARY_DEFAULTS, p: v}.items()) for p, vs in VARY_VALUES.items() for v in vs}
    rows = []
    for quirks in (False, True):
        for config in sorted(points):
            config = dict(config)
            if quirks and config["d"] != 10:  # the quirks runs: the T sweep here
                continue
            ft_steps = steps // 2 if config["d"] != 10 else steps
            methods = (("LoRA-ML", 1e-3), ("SR", 10.0)) + ((("SR (authors)", 50.0),) if quirks else ())
            for seed in seeds:
                for method, floor in methods:
                    it = np.arange(ft_steps + 1)
                    loss = floor * (3.0 if quirks else 1.0) + 100 * np.exp(-it / 3) * (1 + seed)
                    rows.append(pd.DataFrame({**config, "ft_steps": ft_steps,
                                              "authors_quirks": quirks, "seed": seed,
                                              "method": method, "iteration": it,
                                              "test_loss": loss, "insample_error": 100 * loss}))
    return pd.concat(rows, ignore_index=True)


def phase_table():
    rows = [{"d": 8, "T": T, "k": k, "seed": s,
             "base_error": 0.5 if T < 3 else 1e-13 * (1 + s), "objective": 0.0}
            for T in range(1, 9) for k in (1, 2, 4) for s in range(3)]
    return pd.DataFrame(rows)


def rate_table():
    n = np.array([20, 100, 1000, 10000])
    rows = []
    for seed in range(3):
        for method, loss in (("LoRA-ML", 0.2 / n + 1e-5), ("SR", 30 + 0 * n), ("oracle", 0.1 / n)):
            rows.append(pd.DataFrame({"d": 10, "T": 3, "k": 1, "N": 5000, "sigma": 0.1, "n": n,
                                      "seed": seed, "method": method, "excess_loss": loss * (1 + seed / 10)}))
    return pd.concat(rows, ignore_index=True)


def landscape_table():
    rng = np.random.default_rng(0)
    return pd.DataFrame({"d": 6, "k": 1, "T": np.repeat([2, 3], 30), "seed": 0,
                         "start": np.tile(np.arange(30), 2),
                         "objective": np.r_[rng.uniform(1e-25, 1e-24, 30), np.zeros(30)],
                         "base_error": np.r_[rng.uniform(0.01, 1, 30), rng.uniform(0, 1e-12, 30)]})


def _line(ax, method):
    return next(l for l in ax.get_lines() if re.fullmatch(re.escape(method) + r" \(\d+ seeds?\)",
                                                          l.get_label()))


def test_vary_figure_has_one_panel_per_value_with_log_y():
    """A panel per value of each parameter, the centre point (N = 5000) in every row, so the N
    row has 4 panels; log y; one legend naming the seeds."""
    fig = plot_vary(vary_table())
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 3 + 3 + 4 + 3 + 3
    assert all(ax.get_yscale() == "log" for ax in axes)
    assert axes[0].get_title().startswith("d = 5")
    assert [ax.get_title() for ax in axes[6:10]][1:] == ["N = 1000", "N = 5000", "N = 10000"]
    assert axes[-1].get_xlabel() == "fine-tuning iteration"
    assert "population" in axes[0].get_ylabel()
    labels = fig.legends[0].get_texts()
    assert {t.get_text() for t in labels} == {"SR (2 seeds)", "LoRA-ML (2 seeds)"}
    assert "95% t-interval" in fig._suptitle.get_text()


def test_vary_panel_selects_defaults_of_other_parameters_without_quirks():
    table = vary_table()
    rows = vary_panel_rows(table, "T", 2)
    assert set(rows["T"]) == {2}
    assert set(rows["d"]) == {10} and set(rows["k"]) == {1}
    assert not rows["authors_quirks"].any()
    quirky = vary_panel_rows(table, "T", 2, authors_quirks=True)
    assert quirky["authors_quirks"].all() and "SR (authors)" in set(quirky["method"])


def test_vary_panel_is_cut_at_its_sweeps_horizon():
    """The default point runs the longest of its sweeps; the d panel shows only the d sweep's
    steps, the T panel all of them (control)."""
    table = vary_table(steps=20)
    assert vary_panel_rows(table, "d", 10)["iteration"].max() == 10
    assert vary_panel_rows(table, "T", 3)["iteration"].max() == 20
    fig = plot_vary(table, params=("d",))
    assert _line(fig.axes[1], "SR").get_xdata().max() == 10


def test_vary_band_spans_min_to_max_over_seeds():
    fig = plot_vary(vary_table(), params=("k",), band="minmax")
    assert "min-max" in fig._suptitle.get_text()
    ax = fig.axes[0]
    line = _line(ax, "SR")
    mean = 10.0 + 100 * np.exp(-np.arange(21) / 3) * 1.5
    np.testing.assert_allclose(line.get_ydata(), mean)
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(10.0 + 100 * np.exp(-20 / 3), rel=1e-9)


def test_default_band_is_the_95_interval_of_log_y_on_log_axes():
    """On a log axis the default band is the Student-t 95% interval of the mean of log y
    (computed here with scipy from the table, seed by seed), and the line its geometric mean;
    min-max draws the arithmetic mean (a different line, the control)."""
    from scipy import stats

    table = vary_table(seeds=(0, 1, 2))
    ax = plot_vary(table, params=("k",)).axes[0]
    rows = vary_panel_rows(table, "k", 1)
    logs = np.log(rows[rows["method"] == "SR"].pivot(index="iteration", columns="seed",
                                                    values="test_loss").to_numpy())
    half = stats.t.ppf(0.975, 2) * logs.std(axis=1, ddof=1) / np.sqrt(3)
    np.testing.assert_allclose(_line(ax, "SR").get_ydata(), np.exp(logs.mean(axis=1)))
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(np.exp(logs.mean(axis=1) - half).min(), rel=1e-9)
    assert band.max() == pytest.approx(np.exp(logs.mean(axis=1) + half).max(), rel=1e-9)
    minmax = plot_vary(table, params=("k",), band="minmax").axes[0]
    assert not np.allclose(_line(minmax, "SR").get_ydata(), np.exp(logs.mean(axis=1)))
    with pytest.raises(ValueError, match="band must be one of"):
        plot_vary(table, band="sd")


def test_vary_figures_show_the_papers_quantity_and_the_population_loss():
    """quantities picks the column drawn: the paper's in-sample sum (100x the population
    loss in this table) and the population loss, each labelled."""
    table = vary_table()
    mean = 10.0 + 100 * np.exp(-np.arange(21) / 3) * 1.5
    paper = plot_vary(table, params=("k",), quantities=("insample_error",), band="minmax")
    np.testing.assert_allclose(_line(paper.axes[0], "SR").get_ydata(), 100 * mean)
    assert "paper's quantity" in paper.axes[0].get_ylabel()
    both = plot_vary(table, params=("k",), quantities=("insample_error", "test_loss"),
                     band="minmax")
    assert len(both.axes) == 6
    np.testing.assert_allclose(_line(both.axes[0], "SR").get_ydata(), 100 * mean)
    np.testing.assert_allclose(_line(both.axes[3], "SR").get_ydata(), mean)
    assert "population" in both.axes[3].get_ylabel()
    with pytest.raises(ValueError, match="quantities"):
        plot_vary(table, quantities=("loss",))


def test_vary_quirks_figure_shows_each_quirk_against_the_model_as_stated():
    """Rows: no quirks; the authors' noise with pooled SR; the authors' noise and SR."""
    fig = plot_vary_quirks(vary_table(), band="minmax")
    axes = [ax for ax in fig.axes if ax.get_lines()]
    assert len(axes) == 9
    assert all(ax.get_yscale() == "log" for ax in axes)
    mean = 100 * np.exp(-np.arange(21) / 3) * 1.5
    np.testing.assert_allclose(_line(axes[0], "SR").get_ydata(), 100 * (10.0 + mean))
    np.testing.assert_allclose(_line(axes[3], "SR").get_ydata(), 100 * (30.0 + mean))
    np.testing.assert_allclose(_line(axes[6], "SR (authors)").get_ydata(), 100 * (150.0 + mean))
    assert not any(l.get_label().startswith("SR (authors)") for l in axes[3].get_lines())
    assert axes[0].get_ylim() == pytest.approx(axes[8].get_ylim())  # one y range
    labels = {t.get_text() for t in fig.legends[0].get_texts()}
    assert labels == {"SR (2 seeds)", "LoRA-ML (2 seeds)", "SR (authors) (2 seeds)"}


def test_phase_figure_is_a_log_heatmap_over_T_and_k_over_d():
    fig = plot_phase(phase_table())
    ax = fig.axes[0]
    image = ax.get_images()[0]
    assert image.get_array().shape == (3, 8)
    assert isinstance(image.norm, mcolors.LogNorm)
    assert ax.get_xlabel() == "retraining tasks T" and ax.get_ylabel() == "rank ratio k/d"
    texts = [t.get_text() for t in ax.texts]
    assert "100%" in " ".join(texts) and "0%" in " ".join(texts)


def test_phase_figure_draws_kT_equals_d_between_the_right_cells():
    """The kT = d line runs along the right edge of the last column with k T <= d in each row
    (counted here by brute force over the table's cells); a line drawn through the column
    centres, or at d/k itself, is a different staircase."""
    table = phase_table()
    fig = plot_phase(table)
    line = next(ln for ln in fig.axes[0].get_lines() if ln.get_label().startswith("kT = d"))
    ratios = sorted((table["k"] / table["d"]).unique())
    Ts = sorted(table["T"].unique())
    expected = []
    for ratio in ratios:
        k, d = ratio * 8, 8
        last = max((j for j, T in enumerate(Ts) if k * T <= d), default=-1)
        expected += [last + 0.5, last + 0.5]
    np.testing.assert_array_equal(line.get_xdata(), expected)
    assert expected != [8 / (r * 8) - 1 for r in ratios for _ in (0, 1)]  # control: T = d/k


def test_rate_figure_is_log_log_with_reference_line():
    fig = plot_rate(rate_table())
    ax = fig.axes[0]
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")
    lines = {l.get_label(): l for l in ax.get_lines()}
    reference = next(l for name, l in lines.items() if "reference" in name)
    np.testing.assert_allclose(reference.get_ydata(), 1 * 10 * 0.1**2 / np.array([20, 100, 1000, 10000]))
    assert {"LoRA-ML (3 seeds)", "SR (3 seeds)", "oracle (3 seeds)"} <= set(lines)


def test_landscape_figure_has_a_row_per_T_and_survives_exact_zeros():
    fig = plot_landscape(landscape_table())
    assert len(fig.axes) == 4
    assert all(ax.get_xscale() == "log" for ax in fig.axes)
    # shared bins: both rows of a column span the same x range
    assert fig.axes[0].get_xlim() == pytest.approx(fig.axes[2].get_xlim())


def test_missing_columns_raise_a_clear_error():
    with pytest.raises(ValueError, match="rate"):
        plot_rate(rate_table().drop(columns="excess_loss"))


def test_make_figures_reads_tables_only_and_writes_png_and_pdf(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    rate_table().to_csv(results / "rate.csv", index=False)
    landscape_table().to_parquet(results / "landscape.parquet", index=False)
    paths = make_figures(results)
    names = sorted(p.name for p in paths)
    assert names == ["adaptation_rate.pdf", "adaptation_rate.png", "landscape.pdf", "landscape.png"]
    assert all((results / "figures" / n).stat().st_size > 1000 for n in names)
    with pytest.raises(ValueError, match="valid"):
        make_figures(results, only=["nope"])
    copied = publish(paths, tmp_path / "generated")
    assert sorted(p.name for p in copied) == ["adaptation_rate.png", "landscape.png"]


def test_same_table_gives_byte_identical_png(tmp_path):
    results = tmp_path / "r"
    results.mkdir()
    rate_table().to_csv(results / "rate.csv", index=False)
    first = make_figures(results, tmp_path / "a")
    second = make_figures(results, tmp_path / "b")
    for a, b in zip(first, second):
        if a.suffix == ".png":
            assert a.read_bytes() == b.read_bytes()


def test_read_table_prefers_parquet_and_explains_missing(tmp_path):
    rate_table().to_csv(tmp_path / "rate.csv", index=False)
    rate_table().head(3).to_parquet(tmp_path / "rate.parquet", index=False)
    assert len(read_table(tmp_path, "rate")) == 3
    with pytest.raises(FileNotFoundError, match="reproduce --only vary"):
        read_table(tmp_path, "vary")


def test_style_is_okabe_ito_with_distinct_methods():
    colors = [s["color"] for s in METHOD_STYLE.values()]
    assert set(colors) <= set(OKABE_ITO.values())
    assert len(set(colors)) == len(colors)
    assert len({s["linestyle"] for s in METHOD_STYLE.values()}) == len(colors)
    assert set(FIGURES) == {"vary", "phase", "rate", "landscape", "schemes", "atlas",
                            "neural_shallow", "neural_vision", "neural_language"}


def test_make_figures_redraws_only_what_changed(tmp_path, monkeypatch):
    """Up-to-date figures are not drawn again; a changed table, a lost file or --force are."""
    import lowrank_theory.figures.make
    import matplotlib.pyplot as plt

    drawn = []

    def draw(stem):  # a tiny figure per experiment: this test is about when, not what
        def plot(table, band):
            drawn.append(stem)
            fig = plt.figure(figsize=(1, 1))
            fig.text(0.5, 0.5, f"{len(table)}")
            return fig
        return (FigureSpec(stem, plot, "caption", "claim"),)

    monkeypatch.setitem(lowrank_theory.figures.make.FIGURES, "rate", draw("adaptation_rate"))
    monkeypatch.setitem(lowrank_theory.figures.make.FIGURES, "landscape", draw("landscape"))
    results = tmp_path / "r"
    results.mkdir()
    rate_table().to_csv(results / "rate.csv", index=False)
    landscape_table().to_csv(results / "landscape.csv", index=False)
    first = make_figures(results, only=["rate", "landscape"])
    assert drawn == ["adaptation_rate", "landscape"]
    assert make_figures(results, only=["rate", "landscape"]) == first
    assert drawn == ["adaptation_rate", "landscape"]  # nothing drawn again
    rate_table().head(30).to_csv(results / "rate.csv", index=False)  # the rate table changed
    make_figures(results, only=["rate", "landscape"])
    assert drawn[2:] == ["adaptation_rate"]
    (results / "figures" / "landscape.png").write_bytes(b"")  # a damaged figure file
    make_figures(results, only=["rate", "landscape"])
    assert drawn[3:] == ["landscape"]
    make_figures(results, only=["rate", "landscape"], force=True)
    assert drawn[4:] == ["adaptation_rate", "landscape"]
    # The drawing code is part of what a figure depends on.
    monkeypatch.setattr(lowrank_theory.figures.make, "drawing_code_digest", lambda: "other code")
    make_figures(results, only=["rate"])
    assert drawn[6:] == ["adaptation_rate"]


def test_csv_without_manifest_keeps_identifiers_as_strings(tmp_path):
    table = rate_table().assign(config_hash="047076636478", git_commit="1234567", seed=0)
    table.to_csv(tmp_path / "rate.csv", index=False)
    read = read_table(tmp_path, "rate")
    assert set(read["config_hash"]) == {"047076636478"} and set(read["git_commit"]) == {"1234567"}
    assert read["seed"].dtype.kind == "i" and read["excess_loss"].dtype.kind == "f"


def test_vary_figure_set_has_both_quantities_and_the_quirks():
    """The vary table gives the population grid, the paper's-quantity grid, the quirks figure
    and one two-row figure per parameter (each drawn here); the README shows the first three."""
    import matplotlib.pyplot as plt
    from lowrank_theory.figures.make import PUBLISHED

    table = vary_table(steps=6, seeds=(0,))
    stems = {}
    for spec in FIGURES["vary"]:
        fig = spec.draw(table)
        stems[spec.stem] = [ax.get_ylabel().split("\n")[0] for ax in fig.axes if ax.get_ylabel()]
        plt.close(fig)
    assert set(stems) == {"vary", "vary_paper_quantity", "vary_quirks",
                          *(f"vary_{p}" for p in VARY_VALUES)}
    assert set(stems["vary"]) == {"population excess"}
    assert set(stems["vary_paper_quantity"]) == {"paper's quantity"}
    assert stems["vary_T"] == ["paper's quantity", "population excess"]
    assert {"vary", "vary_paper_quantity", "vary_quirks"} <= set(PUBLISHED)


def test_rate_figure_draws_one_panel_per_config_of_a_sweep_file():
    """A grid over sigma gives one facet per config, each with its own reference line (it
    used to fail unpacking a single sigma)."""
    table = pd.concat([rate_table(), rate_table().assign(sigma=1.0)], ignore_index=True)
    fig = plot_rate(table)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 2
    assert [sub._suptitle.get_text() for sub in fig.subfigs] == ["sigma = 0.1", "sigma = 1"]
    assert "sigma=0.1" in visible[0].get_title() and "sigma=1" in visible[1].get_title()
    n = np.array([20, 100, 1000, 10000])
    for ax, sigma in zip(visible, (0.1, 1.0)):
        reference = next(l for l in ax.get_lines() if "reference" in l.get_label())
        np.testing.assert_allclose(reference.get_ydata(), 10 * sigma**2 / n)


def test_landscape_figure_keeps_configs_that_share_T_apart():
    """Rows of k = 1 and k = 2 at the same T are drawn separately and labelled by k; with one
    k the rows read "T = 2" as before."""
    table = pd.concat([landscape_table(), landscape_table().assign(k=2)], ignore_index=True)
    fig = plot_landscape(table)
    assert [sub._suptitle.get_text() for sub in fig.subfigs] == ["k = 1", "k = 2"]
    titles = [ax.get_title() for ax in fig.axes[::2]]
    assert [t.split(":")[0] for t in titles] == ["T = 2", "T = 3", "T = 2", "T = 3"]
    assert all("30 starts" in t for t in titles)
    assert plot_landscape(landscape_table()).axes[0].get_title().startswith("T = 2: 30 starts")


def test_vary_figure_of_a_sweep_file_grid_draws_its_own_values():
    """A d = 50 grid over N (none of the paper's default point) draws one row, N, with a panel
    per N value at d = 50, rather than 15 empty panels."""
    table = pd.concat([vary_table(steps=5).query("N == 5000 and d == 10 and T == 3 and n == 100"
                                                  " and k == 1").assign(d=50, N=N)
                       for N in (200, 2000)], ignore_index=True)
    fig = plot_vary(table)
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert len(titles) == 2 and titles[0].startswith("N = 200") and "d=50" in titles[0]
    assert titles[1] == "N = 2000"
    assert not any(t.get_text() == "no runs" for ax in fig.axes for t in ax.texts)


def test_T2_panels_state_that_the_fine_tuning_adapter_has_rank_3k():
    """With T = 2 the protocol fine-tunes a rank-3k adapter; each T = 2 panel says so, with
    the rank the table records (ft_rank), and no other panel does."""
    table = vary_table().assign(ft_rank=lambda t: np.where(t["T"] == 2, 3 * t["k"], t["k"]))
    titles = [ax.get_title() for ax in plot_vary(table, params=("T",)).axes if ax.get_visible()]
    assert "fine-tuning adapter rank 3k = 3" in titles[0] and titles[0].startswith("T = 2")
    assert not any("3k" in t for t in titles[1:])
    quirks = plot_vary_quirks(table)
    marked = [ax.get_title() for ax in quirks.axes if "3k" in ax.get_title()]
    assert len(marked) == 3 and all(t.startswith("T = 2") for t in marked)
    plt.close("all")


def test_load_table_takes_the_path_of_a_table(tmp_path):
    """``load_table('x.parquet')`` reads the file (it raised AttributeError, wanting a located
    source); CSV and Parquet give the same frame, identifiers as strings."""
    from lowrank_theory.figures.io import load_table

    table = rate_table().assign(config_hash="0123")
    table.to_csv(tmp_path / "rate.csv", index=False)
    table.to_parquet(tmp_path / "rate.parquet", index=False)
    from_csv = load_table(tmp_path / "rate.csv")
    pd.testing.assert_frame_equal(load_table(str(tmp_path / "rate.parquet")), from_csv)
    assert set(from_csv["config_hash"]) == {"0123"}
    with pytest.raises(FileNotFoundError, match="no table file"):
        load_table(tmp_path / "vary.csv")


def test_load_results_finds_experiments_neural_names_and_sweeps(tmp_path):
    """By experiment (``rate``), by neural shorthand (``shallow`` for neural_shallow), by
    sweep (a folder holding one table); a missing name lists what is there."""
    from lowrank_theory.figures import load_results

    rate_table().to_csv(tmp_path / "rate.csv", index=False)
    rate_table().head(2).to_csv(tmp_path / "neural_shallow.csv", index=False)
    (tmp_path / "my_sweep").mkdir()
    landscape_table().to_parquet(tmp_path / "my_sweep" / "landscape.parquet", index=False)
    assert len(load_results(tmp_path, "rate")) == len(rate_table())
    assert len(load_results(tmp_path, "shallow")) == 2
    assert len(load_results(tmp_path, "my_sweep")) == len(landscape_table())
    assert len(load_results(tmp_path / "my_sweep")) == len(landscape_table())
    with pytest.raises(FileNotFoundError, match="found: neural_shallow, rate, my_sweep"):
        load_results(tmp_path, "vary")
    with pytest.raises(ValueError, match="give one of the tables"):
        load_results(tmp_path)


def test_quirks_figure_draws_no_empty_panel():
    """Quirks runs at T = 3 only: the quirks rows have one panel each, the others are not
    drawn (no empty panel), while the row without quirks keeps its three."""
    table = vary_table()
    table = table[~table["authors_quirks"] | (table["T"] == 3)]
    fig = plot_vary_quirks(table)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert len(shown) == 3 + 1 + 1
    assert all(ax.get_lines() for ax in shown)
    plt.close(fig)
