"""End-to-end tests of ``lowrank-theory neural`` on the sweep runner, at tiny step scales."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # tiny problems: threads only add contention
pytestmark = pytest.mark.torch

from lowrank_theory.cli import main  # noqa: E402
from lowrank_theory.simulations.neural import configs as C  # noqa: E402
from lowrank_theory.simulations.runner import drop_provenance, run_experiment  # noqa: E402

#: Step scales that keep every experiment to seconds (every step budget becomes a handful).
TINY = {"shallow": "0.0005", "vision": "0.02", "language": "0.02"}
#: Columns every table carries: keys, the preset, the device and the runner's provenance.
COLUMNS = ["experiment", "config_hash", "seed", "preset", "steps_scale", "torch_version",
           "device", "package_version", "git_commit", "timestamp"]


def _run(experiment, out, *extra):
    args = ["neural", "--experiment", experiment, "--steps-scale", TINY[experiment],
            "--seeds", "2", "--jobs", "1", "--threads", "1", "--out", str(out), *extra]
    return main(args)


def _tiny_language(preset, steps_scale=1.0, seeds=None):
    """The cpu language preset with two tiny persona groups (the code path, in seconds)."""
    from dataclasses import replace

    sweep = C.language_sweep(preset, steps_scale, seeds)
    config = replace(sweep.configs[0], num_tasks=2, examples_per_task=6, n_finetune=4,
                     n_test=6, hidden=8, batch_size=2, reptile_inner_steps=2)
    return C.Sweep((config,), sweep.seeds)


@pytest.mark.parametrize("experiment", ["shallow", "vision", "language"])
def test_cli_end_to_end(experiment, tmp_path, capsys, monkeypatch):
    """The subcommand runs the sweep, writes a tidy table with provenance, preset and scale
    columns, and prints a summary."""
    if experiment == "language":
        pytest.importorskip("transformers")
        monkeypatch.setitem(C.SWEEPS, "language", _tiny_language)
    assert _run(experiment, tmp_path) == 0
    table = pd.read_csv(tmp_path / f"neural_{experiment}.csv")
    assert set(COLUMNS) <= set(table.columns)
    assert sorted(table["seed"].unique()) == [0, 1]
    assert (table["preset"] == "cpu").all()
    assert (table["steps_scale"] == float(TINY[experiment])).all()
    assert table["test_loss"].notna().all()
    out = capsys.readouterr().out
    assert "+-" in out and "lora_ml" in out and "computed" in out
    if experiment == "shallow":
        assert {(d, T) for d, T in zip(table["d"], table["T"], strict=True)} == {
            (5, 3), (10, 3), (20, 3), (10, 2), (10, 5), (10, 10)}
        assert set(table["method"]) == {"sr", "lora_ml"}
        assert set(table.loc[table["T"] == 2, "ft_rank"]) == {1, 3}
        assert set(table.loc[table["T"] != 2, "ft_rank"]) == {1}
        assert len(table) == 2 * 2 * 7  # seeds x methods x (6 settings + rank 3k at T = 2)
    else:
        assert table["test_accuracy"].between(0, 1).all()


KILLER = textwrap.dedent("""
    import os, signal, sys
    from dataclasses import replace
    from lowrank_theory.simulations.neural.configs import shallow_sweep
    from lowrank_theory.simulations.neural.experiments import EXPERIMENTS
    from lowrank_theory.simulations.neural.shallow import run_shallow
    from lowrank_theory.simulations.runner import run_experiment

    calls = []

    def run(config, seeds, **options):
        if len(calls) == 2:  # the third unit: die as a kill would, no clean-up
            os.kill(os.getpid(), signal.SIGKILL)
        calls.append(config)
        return run_shallow(config, seeds, **options)

    experiment = replace(EXPERIMENTS["shallow"], run=run)
    run_experiment(experiment, sys.argv[1], sweep=shallow_sweep("cpu", {scale}, (0, 1)),
                   options={{"threads": 1}})
""")


def test_killed_run_resumes_with_the_same_table(tmp_path, capsys):
    """A run killed (SIGKILL) during its third unit keeps the two finished units; the rerun
    computes only the four others, and its table equals that of an uninterrupted run."""
    script = tmp_path / "killer.py"
    script.write_text(KILLER.format(scale=TINY["shallow"]))
    killed = tmp_path / "killed"
    # The child imports the project from this checkout whether or not it is installed.
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (root, os.environ.get(
        "PYTHONPATH"))))}
    proc = subprocess.run([sys.executable, str(script), str(killed)], capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode == -9, proc.stderr
    assert len(list((killed / "neural_shallow" / "runs").glob("*.csv"))) == 2
    assert not (killed / "neural_shallow.csv").exists()

    assert _run("shallow", killed) == 0
    assert "4 computed, 2 skipped" in capsys.readouterr().out
    assert _run("shallow", tmp_path / "fresh") == 0
    resumed = drop_provenance(pd.read_csv(killed / "neural_shallow.csv"))
    fresh = drop_provenance(pd.read_csv(tmp_path / "fresh" / "neural_shallow.csv"))
    pd.testing.assert_frame_equal(resumed, fresh)


def test_bad_out_and_missing_data_stop_before_any_compute(tmp_path, capsys, monkeypatch):
    """An unwritable --out, or CIFAR-10 / ConvAI2 missing, exit with code 2 and a message
    before a single unit runs."""
    import lowrank_theory.simulations.runner as runner

    def no_compute(*args, **kwargs):
        raise AssertionError("compute started")

    monkeypatch.setattr(runner, "run_experiment", no_compute)
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert _run("shallow", blocker / "sub") == 2
    assert "--out" in capsys.readouterr().err
    rc = main(["neural", "--experiment", "vision", "--size", "paper", "--out", str(tmp_path)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "--data-dir" in err and "cifar-10-batches-py" in err
    rc = main(["neural", "--experiment", "vision", "--size", "paper", "--out", str(tmp_path),
               "--data-dir", str(tmp_path)])
    assert rc == 2
    assert "CIFAR-10 not found" in capsys.readouterr().err
    pytest.importorskip("transformers")
    rc = main(["neural", "--experiment", "language", "--size", "paper", "--out", str(tmp_path)])
    assert rc == 2
    assert "ConvAI2" in capsys.readouterr().err


def test_unknown_option_is_refused_before_compute(tmp_path):
    from lowrank_theory.simulations.neural.experiments import EXPERIMENTS

    with pytest.raises(ValueError, match="colour"):
        run_experiment(EXPERIMENTS["shallow"], tmp_path, sweep=C.shallow_sweep("cpu", 0.001),
                       options={"colour": "blue"})
    assert not list(tmp_path.rglob("*.csv"))


def test_cli_usage_errors(capsys, monkeypatch):
    with pytest.raises(SystemExit) as info:
        main(["neural", "--experiment", "audio"])
    assert info.value.code == 2
    assert "shallow" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["neural", "--experiment", "shallow", "--steps-scale", "0"])
    assert "--steps-scale" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["neural", "--experiment", "shallow", "--device", "cuda"]) == 2
        assert "no CUDA" in capsys.readouterr().err
    assert main(["neural", "--experiment", "shallow", "--device", "tpu9"]) == 2

    monkeypatch.setitem(sys.modules, "torch", None)  # makes ``import torch`` fail
    assert main(["neural", "--experiment", "shallow"]) == 2
    assert "pip install 'lowrank-theory[torch]'" in capsys.readouterr().err


def test_paper_presets_are_the_authors_settings():
    """The paper presets carry the settings of the authors' scripts (jacob-block/peft-ml)."""
    sweep = C.shallow_sweep("paper")
    assert len(sweep.seeds) == 10
    assert sorted((c.d, c.T) for c in sweep.configs) == [
        (5, 3), (10, 2), (10, 3), (10, 5), (10, 10), (20, 3)]
    for c in sweep.configs:
        assert (c.k, c.N, c.n, c.sigma, c.lr, c.finetune_lr, c.weight_decay) == (
            1, 1000, 100, 0.1, 1e-3, 1e-3, 0.01)
        assert (c.retrain_steps, c.finetune_steps) == (40000, 15000)
        assert (c.input_std, c.symmetric_base) == (1.0, False)
        assert c.finetune_ranks == ((1, 3) if c.T == 2 else (1,))
    vision_sweep = C.vision_sweep("paper")
    assert [c.methods for c in vision_sweep.configs] == [
        ("sr",), ("lora_ml",), ("reptile",), ("last_layer_ml",)]
    vision = vision_sweep.configs[0]
    assert vision.dataset == "cifar10" and vision.test_pair == (8, 9)
    assert vision.retrain_pairs == ((0, 1), (2, 3), (4, 5), (6, 7))
    assert (vision.depth, vision.patch, vision.width) == (1, 4, 512)
    assert (vision.token_hidden, vision.channel_hidden, vision.rank) == (256, 256, 1)
    assert (vision.optimizer, vision.schedule, vision.augment) == ("adam", "cosine", True)
    assert (vision.lr, vision.finetune_lr, vision.weight_decay) == (1e-4, 5e-4, 1e-5)
    assert (vision.n_finetune, vision.finetune_batch_size) == (10000, 256)
    assert len(C.vision_sweep("paper").seeds) == 5
    language = C.language_sweep("paper").configs[0]
    assert (language.num_tasks, language.rank, language.alpha) == (10, 8, 16.0)
    assert (language.lr, language.batch_size, language.reptile_inner_steps) == (5e-5, 8, 20)
    assert not language.tiny_model and len(C.language_sweep("paper").seeds) == 5


def test_cpu_presets_keep_the_paper_shape_and_steps_scale_scales():
    paper, cpu = C.shallow_sweep("paper"), C.shallow_sweep("cpu")
    assert [(c.d, c.T, c.finetune_ranks) for c in cpu.configs] == [
        (c.d, c.T, c.finetune_ranks) for c in paper.configs]
    assert all(c.retrain_steps == 10000 and c.finetune_steps == 3750 for c in cpu.configs)
    half = C.shallow_sweep("paper", 0.5)
    assert all((c.retrain_steps, c.finetune_steps, c.steps_scale) == (20000, 7500, 0.5)
               for c in half.configs)
    assert C.scaled(3, 0.001) == 1
    hashes = {c.config_hash() for c in paper.configs + cpu.configs + half.configs}
    assert len(hashes) == 18  # preset and scale are part of every config's identity


def test_configs_validate_their_fields():
    with pytest.raises(ValueError, match="retrain_steps"):
        C.ShallowConfig(retrain_steps=0)
    with pytest.raises(ValueError, match="lr"):
        C.ShallowConfig(lr=-1.0)
    with pytest.raises(ValueError, match="methods"):
        C.ShallowConfig(methods=("sr", "reptile"))
    with pytest.raises(ValueError, match="finetune_ranks"):
        C.ShallowConfig(finetune_ranks=(1, 1))
    with pytest.raises(ValueError, match="preset"):
        C.ShallowConfig(preset="laptop")
    with pytest.raises(ValueError, match="methods"):
        C.VisionConfig(methods=("sr", "magic"))
    with pytest.raises(ValueError, match="finetune_modes"):
        C.VisionConfig(finetune_modes=("full",))
    with pytest.raises(ValueError, match="multiple of"):
        C.VisionConfig(patch=5)
    with pytest.raises(ValueError, match="steps_scale"):
        C.shallow_sweep("cpu", steps_scale=0.0)
    assert C.ShallowConfig(sigma=0.0).sigma == 0.0


def test_only_restricts_the_preset_to_some_experiments(tmp_path, capsys):
    """``--only shallow,vision`` runs those two of the preset and not language; --only and
    --experiment together are refused (exit 2)."""
    argv = ["neural", "--only", "shallow,vision", "--steps-scale", "0.002", "--seeds", "1",
            "--jobs", "1", "--threads", "1", "--out", str(tmp_path), "--json"]
    assert main(argv) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert [r["experiment"] for r in runs] == ["shallow", "vision"]
    assert sorted(p.name for p in tmp_path.glob("*.csv")) == ["neural_shallow.csv",
                                                            "neural_vision.csv"]
    assert main(["neural", "--experiment", "shallow", "--only", "vision"]) == 2
    assert "give one of them" in capsys.readouterr().err


SHALLOW_SWEEP = """
experiment = "shallow"
size = "cpu"
steps_scale = {scale}
seeds = 2

[grid]
d = [5, 15]
"""


def test_shallow_sweep_file_runs_resumes_and_draws(tmp_path, capsys):
    """A shallow sweep file (cpu preset, [grid] d = [5, 15]) through ``reproduce --config``:
    one config per d at T = 3 with the preset's scaled steps, the table and its figure (a
    panel over d) and the report; a lost unit is recomputed alone on the rerun and the table
    is the same (up to provenance)."""
    config = tmp_path / "shallow.toml"
    config.write_text(SHALLOW_SWEEP.format(scale=TINY["shallow"]))
    out = tmp_path / "out"
    argv = ["reproduce", "--config", str(config), "--out", str(out), "--format", "png"]
    assert main(argv) == 0
    first = pd.read_csv(out / "neural_shallow.csv")
    assert sorted(set(zip(first["d"], first["T"]))) == [(5, 3), (15, 3)]
    base = C.preset_base("shallow", "cpu", float(TINY["shallow"]))
    assert set(first["retrain_steps"]) == {base.retrain_steps}
    assert (out / "figures" / "neural_shallow.png").stat().st_size > 1000
    assert "neural_shallow.png" in (out / "report.html").read_text()
    lost = sorted((out / "neural_shallow" / "runs").glob("*.csv"))[0]
    lost.unlink()
    lost.with_suffix(".json").unlink()
    capsys.readouterr()
    assert main(argv) == 0
    assert "1 computed, 1 skipped" in capsys.readouterr().out
    again = pd.read_csv(out / "neural_shallow.csv")
    pd.testing.assert_frame_equal(drop_provenance(again), drop_provenance(first))
