"""Run the Examples sections of the core modules' docstrings.

Each covered module must carry examples and every one of them must run: a module whose
examples were lost (or a doctest collector that finds none) fails instead of passing empty.
"""

import doctest
import importlib

import pytest

CORE = ["tasks", "losses", "adapters", "retraining", "objective", "lora_ml", "paper_protocol",
        "adaptation", "metrics", "_threads"]


def _examples(module):
    tests = doctest.DocTestFinder().find(module, module.__name__)
    return sum(len(t.examples) for t in tests)


@pytest.mark.parametrize("name", CORE)
def test_docstring_examples(name):
    module = importlib.import_module(f"lowrank_theory.{name}")
    n_examples = _examples(module)
    assert n_examples > 0, f"lowrank_theory.{name} has no docstring examples"
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    assert result.attempted == n_examples


def test_a_module_without_examples_is_caught():
    """Negative control: a module with no examples (reference.py has none) has zero to run."""
    assert _examples(importlib.import_module("lowrank_theory.reference")) == 0
