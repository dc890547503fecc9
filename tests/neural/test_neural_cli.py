"""End-to-end tests of ``lowrank-theory neural`` and the experiment configs at tiny sizes."""

import dataclasses

import pandas as pd
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # tiny problems: threads only add contention
pytestmark = pytest.mark.torch

from lowrank_theory.cli import main  # noqa: E402
from lowrank_theory.neural import experiments as E  # noqa: E402

MAKE_CONFIG = E.make_config

PROVENANCE = ["experiment", "config_hash", "seed", "package_version", "torch_version", "device",
              "timestamp"]


def _tiny(experiment, size):
    """Tiny versions of the cpu configs (same code paths, seconds to run)."""
    config = MAKE_CONFIG(experiment, "cpu")
    if experiment == "shallow":
        return dataclasses.replace(config, d_values=(3,), T_values=(2, 3), base_d=3, N=64, n=16,
                                   n_test=64, retrain_steps=20, finetune_steps=10)
    if experiment == "vision":
        return dataclasses.replace(config, width=8, retrain_steps=6, batch_size=8, n_finetune=8,
                                   finetune_steps=3, methods=("sr", "lora_ml", "reptile",
                                                              "last_layer_ml", "fomaml"))
    return dataclasses.replace(config, num_tasks=2, examples_per_task=6, n_finetune=4, n_test=6,
                               hidden=8, retrain_steps=5, batch_size=2, finetune_steps=2,
                               reptile_inner_steps=2)


@pytest.fixture
def tiny_configs(monkeypatch):
    monkeypatch.setattr(E, "make_config", _tiny)


@pytest.mark.parametrize("experiment", ["shallow", "vision", "language"])
def test_cli_end_to_end(experiment, tiny_configs, tmp_path, capsys):
    """The subcommand runs, writes a tidy CSV with provenance and prints a summary table."""
    if experiment == "language":
        pytest.importorskip("transformers")
    rc = main(["neural", "--experiment", experiment, "--seeds", "2", "--out", str(tmp_path)])
    assert rc == 0
    table = pd.read_csv(tmp_path / f"neural_{experiment}_cpu.csv")
    assert set(PROVENANCE) <= set(table.columns)
    assert sorted(table["seed"].unique()) == [0, 1]
    assert table["config_hash"].nunique() == 1
    assert table["test_loss"].notna().all()
    out = capsys.readouterr().out
    assert "+-" in out and "lora_ml" in out
    if experiment == "shallow":
        assert set(table["T"]) == {2, 3} and set(table["method"]) == {"sr", "lora_ml"}
    else:
        assert table["test_accuracy"].between(0, 1).all()


def test_cli_language_on_convai2_files(tiny_configs, tmp_path):
    """--data-dir switches the language experiment to ConvAI2 files (a tiny one here)."""
    pytest.importorskip("transformers")
    from test_neural_loaders import _write_convai2

    data = tmp_path / "convai2"
    data.mkdir()
    _write_convai2(data / "train_self_original.txt", personas=3, dialogues_per_persona=4)
    rc = main(["neural", "--experiment", "language", "--seed", "3", "--out", str(tmp_path),
               "--data-dir", str(data)])
    assert rc == 0
    table = pd.read_csv(tmp_path / "neural_language_cpu.csv")
    assert (table["data"] == "convai2").all() and (table["seed"] == 3).all()


def test_cli_is_deterministic(tiny_configs, tmp_path):
    for name in ("a", "b"):
        assert main(["neural", "--experiment", "shallow", "--seed", "1",
                     "--out", str(tmp_path / name)]) == 0
    a, b = (pd.read_csv(tmp_path / n / "neural_shallow_cpu.csv") for n in ("a", "b"))
    pd.testing.assert_series_equal(a["test_loss"], b["test_loss"])


def test_cli_missing_data_is_a_message_not_a_trace(tmp_path, capsys):
    """Paper sizes without local data exit with code 2 and say where to put the data."""
    rc = main(["neural", "--experiment", "vision", "--size", "paper", "--out", str(tmp_path)])
    assert rc == 2
    assert "--data-dir" in capsys.readouterr().err
    pytest.importorskip("transformers")
    rc = main(["neural", "--experiment", "language", "--size", "paper", "--out", str(tmp_path)])
    assert rc == 2
    assert "ConvAI2" in capsys.readouterr().err


def test_cli_usage_errors(capsys, monkeypatch):
    with pytest.raises(SystemExit) as info:
        main(["neural", "--experiment", "audio"])
    assert info.value.code == 2
    assert "shallow" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["neural", "--experiment", "shallow", "--device", "cuda"]) == 2
        assert "no CUDA" in capsys.readouterr().err
    assert main(["neural", "--experiment", "shallow", "--device", "tpu9"]) == 2

    import sys

    monkeypatch.setitem(sys.modules, "torch", None)  # makes ``import torch`` fail
    assert main(["neural", "--experiment", "shallow"]) == 2
    assert "pip install -e .[torch]" in capsys.readouterr().err


def test_paper_configs_match_the_paper():
    """The paper sizes carry the settings THEORY.md section 6 states."""
    shallow = E.make_config("shallow", "paper")
    assert shallow.d_values == (5, 10, 20) and shallow.T_values == (2, 3, 5, 10)
    assert (shallow.base_T, shallow.N, shallow.n, shallow.k, shallow.sigma) == (3, 1000, 100, 1, 0.1)
    assert shallow.lr == 1e-3 and shallow.seeds == 10
    vision = E.make_config("vision", "paper")
    assert vision.dataset == "cifar10" and vision.test_pair == (8, 9)
    assert vision.retrain_pairs == ((0, 1), (2, 3), (4, 5), (6, 7))
    assert (vision.depth, vision.patch, vision.width, vision.seeds) == (1, 4, 512, 5)
    assert set(vision.methods) == {"sr", "lora_ml", "reptile", "last_layer_ml"}
    assert set(vision.finetune_modes) == {"lora", "last_layer"}
    pytest.importorskip("transformers")
    language = E.make_config("language", "paper")
    assert (language.rank, language.alpha, language.seeds) == (8, 16.0, 5)
    assert set(language.methods) == {"sr", "lora_ml", "reptile"} and not language.tiny_model
    assert len({E.make_config(n, s).config_hash() for n in E.EXPERIMENTS for s in E.SIZES}) == 6


def test_configs_validate_their_fields():
    with pytest.raises(ValueError, match="retrain_steps"):
        dataclasses.replace(E.ShallowConfig.cpu(), retrain_steps=0)
    with pytest.raises(ValueError, match="lr"):
        dataclasses.replace(E.ShallowConfig.cpu(), lr=-1.0)
    with pytest.raises(ValueError, match="unknown methods"):
        dataclasses.replace(E.VisionConfig.cpu(), methods=("sr", "magic"))
    with pytest.raises(ValueError, match="finetune_modes"):
        dataclasses.replace(E.VisionConfig.cpu(), finetune_modes=("full",))
    assert dataclasses.replace(E.ShallowConfig.cpu(), sigma=0.0).sigma == 0.0
