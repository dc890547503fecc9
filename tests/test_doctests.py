"""Every module's Examples run here, once: the one place doctests are collected.

The modules are those of the four layers (the same walk as ``tests/test_layering.py``). For each
module the examples ``doctest`` finds must all run and pass (``attempted`` equals the number
found, ``failed`` is 0), and a module either has examples or is listed in
:data:`WITHOUT_EXAMPLES` with the reason: a module whose examples were lost fails, and so does a
listed module that has gained some (so the list cannot go stale). Modules that need the torch
extra are skipped without it.
"""

from __future__ import annotations

import doctest
import importlib

import pytest
from test_layering import LAYERS, ROOT, module_files

#: Modules with no Examples section, and why. Anything else must carry examples.
WITHOUT_EXAMPLES: dict[str, str] = {
    "lowrank_theory._validation": "private validators; every public function exercises them",
    "lowrank_theory.reference": "the independent per-sample implementation: tests only",
    "lowrank_theory.stationary": "certificates need a converged point; tested in test_landscape",
    "lowrank_theory.neural": "package docstring only",
    "lowrank_theory.neural.data": "loaders read files on disk; tested on files the tests write",
    "lowrank_theory.neural.finetune": "training loops; tested in tests/neural",
    "lowrank_theory.neural.language": "needs a tokenizer folder; tested on a tiny one",
    "lowrank_theory.neural.methods": "training loops; tested in tests/neural",
    "lowrank_theory.neural.models": "modules of torch; tested in tests/neural",
    "lowrank_theory.neural.runtime": "device and thread set-up; tested in tests/neural",
    "lowrank_theory.neural.shallow": "batched training; tested against autograd in tests/neural",
    "lowrank_theory.neural.stacked": "batched training; tested in tests/neural",
    "lowrank_theory.schemes": "package docstring only",
    "lowrank_theory.theorems": "package docstring only",
    "lowrank_theory.theorems.result": "the shared scales; tested in test_theorems",
    "lowrank_theory.theorems.records": "package docstring only",
    **{f"lowrank_theory.theorems.records.{m}": "records of the registry: each runs as a check, "
       "walked with its control by test_theorems_registry"
       for m in ("beyond", "finite_sample", "landscape", "minima", "retraining", "schemes",
                 "two_tasks")},
    "lowrank_theory.simulations": "package docstring only",
    "lowrank_theory.simulations.experiments": "the registry of experiments; run in test_simulations",
    "lowrank_theory.simulations.neural": "package docstring only",
    "lowrank_theory.simulations.neural.experiments": "needs torch; run in tests/neural",
    "lowrank_theory.simulations.neural.language": "needs torch; run in tests/neural",
    "lowrank_theory.simulations.neural.shallow": "needs torch; run in tests/neural",
    "lowrank_theory.simulations.neural.vision": "needs torch; run in tests/neural",
    "lowrank_theory.simulations.schemes": "an experiment; run in test_simulations_schemes",
    "lowrank_theory.simulations.store": "files on disk; tested in test_store",
    "lowrank_theory.simulations.outdir": "files, locks and processes on disk; tested in test_store",
    "lowrank_theory.figures": "package docstring only",
    "lowrank_theory.figures.make": "draws files; tested in test_figures",
    "lowrank_theory.figures.report": "writes a run's report; tested in test_report",
    "lowrank_theory.figures.neural": "draws files; tested in tests/neural",
    "lowrank_theory.figures.schemes": "draws files; tested in test_figures_schemes",
    "lowrank_theory.figures.style": "matplotlib settings; tested in test_figures",
    "lowrank_theory.cli": "the entry point; tested in test_cli_grammar",
    "lowrank_theory.cli.check": "a subcommand; tested in test_theorems_registry",
    "lowrank_theory.cli.describe": "a subcommand; tested in test_describe",
    "lowrank_theory.cli.neural": "a subcommand; tested in tests/neural/test_neural_cli",
    "lowrank_theory.cli.reproduce": "a subcommand; tested in test_simulations_cli",
}
#: Modules that import torch when loaded.
NEEDS_TORCH = ("lowrank_theory.neural.", "lowrank_theory.simulations.neural.experiments",
               "lowrank_theory.simulations.neural.language",
               "lowrank_theory.simulations.neural.shallow",
               "lowrank_theory.simulations.neural.vision")
MODULES = sorted(m for m in module_files(LAYERS, ROOT) if not m.endswith("__main__"))
FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS


def _examples(module) -> list[doctest.DocTest]:
    return [t for t in doctest.DocTestFinder().find(module, module.__name__) if t.examples]


@pytest.mark.parametrize("name", MODULES)
def test_module_examples(name):
    """The module's examples all run and pass; it has some unless it is listed without."""
    if name.startswith(NEEDS_TORCH):
        pytest.importorskip("torch")
    module = importlib.import_module(name)
    tests = _examples(module)
    found = sum(len(t.examples) for t in tests)
    if name in WITHOUT_EXAMPLES:
        assert found == 0, f"{name} now has examples: remove it from WITHOUT_EXAMPLES"
        return
    assert found > 0, f"{name} has no docstring examples (add some, or list it with a reason)"
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0 and result.attempted == found


def test_the_list_names_only_real_modules():
    """Every module listed without examples exists (a renamed module would leave a stale line)."""
    assert set(WITHOUT_EXAMPLES) <= set(MODULES)


def test_control_a_failing_example_is_caught():
    """Negative control: a docstring whose example prints the wrong value fails the runner."""
    def wrong():
        """>>> 1 + 1
        3
        """

    test = doctest.DocTestFinder().find(wrong, "wrong")[0]
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    runner.run(test, out=lambda _: None)
    assert runner.summarize(verbose=False).failed == 1
