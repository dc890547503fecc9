"""The public surface: every public module declares ``__all__``, packages show no stray names,
the top-level package re-exports the schemes and reaches the theorem checks, and result objects
print a summary (shapes, objective, convergence), never whole matrices."""

import importlib
import inspect
import pkgutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import lowrank_theory as lt

#: The four layers, each installed under lowrank_theory (pyproject.toml's package-dir).
ROOTS = ("lowrank_theory", "lowrank_theory.simulations", "lowrank_theory.figures", "lowrank_theory.cli")
#: Modules that need the torch extra.
TORCH_MODULES = ("lowrank_theory.neural.",)


def _public_modules() -> list[str]:
    names = []
    for root in ROOTS:
        names.append(root)
        package = importlib.import_module(root)
        for info in pkgutil.walk_packages(package.__path__, f"{root}."):
            if not any(part.startswith("_") for part in info.name.split(".")):
                names.append(info.name)
    return names


PUBLIC_MODULES = _public_modules()


def _is_submodule(value, package: str) -> bool:
    return isinstance(value, types.ModuleType) and value.__name__.startswith(f"{package}.")


def _import(name: str) -> types.ModuleType:
    if name.startswith(TORCH_MODULES):
        pytest.importorskip("torch")
    return importlib.import_module(name)


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_every_public_module_declares_its_names(name):
    """``__all__`` exists, each of its names resolves, and every public function or class the
    module defines is in it (a public helper left out of ``__all__`` is a forgotten export)."""
    module = _import(name)
    assert hasattr(module, "__all__"), f"{name} has no __all__"
    assert not [n for n in module.__all__ if not hasattr(module, n)]
    assert len(set(module.__all__)) == len(module.__all__)
    undeclared = [
        n for n, obj in vars(module).items()
        if not n.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
        and obj.__module__ == name and n not in module.__all__
    ]
    assert not undeclared, f"{name} defines public {undeclared} outside __all__"


@pytest.mark.parametrize("name", [n for n in PUBLIC_MODULES
                                  if hasattr(importlib.util.find_spec(n), "submodule_search_locations")
                                  and importlib.util.find_spec(n).submodule_search_locations])
def test_packages_show_no_stray_public_names(name):
    """A package's ``dir()`` holds its ``__all__`` and its submodules, nothing imported for
    its own use (``version``, ``PackageNotFoundError``, ``Any``, ``importlib``...)."""
    module = _import(name)
    stray = [n for n in dir(module) if not n.startswith("_") and n not in module.__all__
             and not _is_submodule(getattr(module, n), name)]
    assert not stray, f"{name} shows {stray}"


def test_the_walk_finds_the_modules_and_flags_a_stray_name():
    """Negative control: the walk sees the known modules, and a package with a stray import
    (the old top level's ``version``) fails the stray-name rule."""
    assert {"lowrank_theory.tasks", "lowrank_theory.theorems.report", "lowrank_theory.simulations.sweepfile",
            "lowrank_theory.figures.plots"} <= set(PUBLIC_MODULES)
    fake = types.ModuleType("fake")
    fake.__all__ = ["f"]
    fake.f = lambda: None
    from importlib.metadata import version

    fake.version = version
    fake.importlib = importlib
    assert [n for n in dir(fake) if not n.startswith("_") and n not in fake.__all__
            and not _is_submodule(getattr(fake, n), "fake")] == ["importlib", "version"]


def test_top_level_reexports_schemes_and_reaches_theorems():
    """``lowrank_theory`` exports the schemes' classes and the ``theorems`` package, and
    nothing of its own implementation."""
    from lowrank_theory import schemes, theorems

    for name in ("AdaptationScheme", "SchemeResult", "FixedRankLoRA", "FullFineTune",
                 "AdaptiveRankLoRA", "MixtureOfAdapters", "SubspaceInit", "WeightInterpolation",
                 "PostPerturbation"):
        assert getattr(lt, name) is getattr(schemes, name) and name in lt.__all__
    assert lt.theorems is theorems and callable(lt.theorems.run_checks)
    assert {"PackageNotFoundError", "version"}.isdisjoint(dir(lt))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        lt.nope  # noqa: B018


def test_importing_the_package_does_not_import_the_checks():
    """The schemes no longer import the checks (their CheckResult comes from the light
    lowrank_theory.check_result), so ``import lowrank_theory`` loads the schemes and not the
    checks, which load on first use of ``lowrank_theory.theorems``."""
    code = ("import sys, lowrank_theory as lt; "
            "print('lowrank_theory.theorems' in sys.modules, 'lowrank_theory.schemes' in sys.modules); "
            "lt.theorems; print('lowrank_theory.theorems' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent).stdout.split()
    assert out == ["False", "True", "True"]


# --------------------------------------------------------------------------- reprs
def _assert_summary(text: str, *expected: str) -> None:
    assert "array(" not in text and "\n" not in text and len(text) < 300, text
    for part in expected:
        assert part in text, (part, text)


def test_check_result_repr_is_a_summary():
    res = lt.theorems.run_checks(seed=0, only=["sr-rank"])[0]
    _assert_summary(repr(res), "name='sr-rank'", "kind='theorem'", "holds=True", "margin=")
    assert res.detail not in repr(res)


def test_scheme_result_repr_shows_shapes_not_matrices():
    fam = lt.TaskFamily.random(d=12, k=1, T=3, seed=0)
    result = lt.FixedRankLoRA().adapt(lt.standard_retraining(fam), fam.new_task(seed=1),
                                      budget=24)
    _assert_summary(repr(result), "scheme='lora-exact'", "budget=24", "loss=", "update_rank=1",
                    "W=<array (12, 12)>")


def test_sweep_result_repr_is_a_summary(tmp_path):
    from lowrank_theory.simulations.configs import PhaseConfig, Sweep
    from lowrank_theory.simulations.experiments import EXPERIMENTS
    from lowrank_theory.simulations.runner import run_experiment

    result = run_experiment(EXPERIMENTS["phase"], tmp_path,
                            sweep=Sweep((PhaseConfig(d=3, restarts=1),), (0,)), progress=False)
    _assert_summary(repr(result), "experiment='phase'", "units=1", "computed=1", "skipped=0")
    assert result.to_dict()["tables"] == [str(p) for p in result.tables]


def test_summary_repr_negative_control():
    """The helper shows an array by its shape; the default repr would print its entries."""
    from lowrank_theory._repr import summary_repr

    W = np.arange(9.0).reshape(3, 3)
    assert summary_repr("R", {"W": W}) == "R(W=<array (3, 3)>)"
    assert "array(" in repr({"W": W})


def test_core_objects_print_summaries():
    """TaskFamily, TaskData, LoRAMLResult and FineTuneResult show shapes, the objective,
    convergence and method (they used to print every matrix entry)."""
    fam = lt.TaskFamily.random(d=12, k=1, T=3, seed=0)
    data = fam.sample(40, seed=1)
    fit = lt.fit_lora_ml(data, k=1, seed=0)
    ft = lt.fine_tune(fit, fam.new_task(seed=2), rank=1, method="gd", steps=5, n=30, seed=0)
    _assert_summary(repr(fam), "TaskFamily(d=12, k=1, T=3, sigma=0.1, Sigma=None)")
    _assert_summary(repr(data), "TaskData(T=3, n=40, d=12, family=TaskFamily(d=12")
    _assert_summary(repr(fit), "method='exact'", "SymmetricAdapter(rank=1)", "objective=",
                    f"converged={fit.converged}", f"n_iter={fit.n_iter}", "A=<array (12, 12)>",
                    "U=<array (3, 12, 1)>")
    _assert_summary(repr(ft), "method='gd'", "AsymmetricAdapter(rank=1)", "n=30", "steps=5",
                    "loss=", "delta=<array (12, 12)>")
