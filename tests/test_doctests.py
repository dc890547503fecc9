"""Run the Examples sections of the core modules' docstrings."""

import doctest
import importlib

import pytest

CORE = ["tasks", "losses", "adapters", "retraining", "lora_ml", "adaptation", "metrics"]


@pytest.mark.parametrize("name", CORE)
def test_docstring_examples(name):
    module = importlib.import_module(f"lowrank_theory.{name}")
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
