"""What a sweep may set: every experiment's fields, read from its config class.

The config classes are the one source (:func:`lowrank_theory.simulations.fields.param`: each
field's meaning and allowed values); ``lowrank-theory describe EXPERIMENT`` prints them and
``docs/sweeps.md`` is generated from them (``make docs``; a test fails when it is out of date).
Importing this module imports neither torch nor the numerical core's solvers.
"""

from __future__ import annotations

import inspect
from typing import Any

from lowrank_theory.simulations.fields import field_specs

__all__ = ["sweepable", "describe", "describe_text", "sweeps_markdown", "NEURAL_KEYS"]

#: Execution options of the neural run functions (``[options]`` of a neural sweep file).
NEURAL_OPTIONS = ("threads (torch threads per worker), data_dir (CIFAR-10 or ConvAI2 folder), "
                  "model_dir (roberta-base folder), graph (CUDA graphs, true by default)")
#: Top-level keys of a neural sweep file, with their meaning.
NEURAL_KEYS: dict[str, str] = {
    "size": "the preset the grid starts from: cpu (default) or paper",
    "steps_scale": "multiplies every step budget of the preset (default 1)",
    "device": "torch device: cpu (default), cuda, cuda:1, mps",
}


def sweepable() -> dict[str, dict[str, Any]]:
    """The experiments a sweep file may name: config type, table name, one-line summary.

    Examples
    --------
    >>> list(sweepable())
    ['vary', 'phase', 'rate', 'landscape', 'schemes', 'atlas', 'shallow', 'vision', 'language']
    >>> sweepable()["shallow"]["table"]
    'neural_shallow'
    """
    from lowrank_theory.simulations.experiments import EXPERIMENTS
    from lowrank_theory.simulations.neural.configs import CONFIG_TYPES

    out = {name: {"config": exp.config_type, "table": exp.name, "summary": exp.title,
                  "neural": False, "options": ", ".join(exp.options) or "none"}
           for name, exp in EXPERIMENTS.items()}
    for name, config_type in CONFIG_TYPES.items():
        summary = inspect.getdoc(config_type).splitlines()[0].rstrip(".")
        out[name] = {"config": config_type, "table": f"neural_{name}", "summary": summary,
                     "neural": True, "options": NEURAL_OPTIONS}
    return out


def describe(name: str) -> dict[str, Any]:
    """Everything a sweep of experiment ``name`` may set, as a JSON-ready record.

    Raises
    ------
    ValueError
        If ``name`` is not an experiment a sweep file may name (the message lists them).

    Examples
    --------
    >>> record = describe("phase")
    >>> record["config"], [f["name"] for f in record["fields"]]
    ('PhaseConfig', ['d', 'T', 'k', 'solver', 'restarts'])
    >>> record["fields"][0]
    {'name': 'd', 'type': 'int', 'default': 10, 'range': 'an integer >= 1', 'help': 'input and output dimension'}
    """
    known = sweepable()
    if name not in known:
        raise ValueError(f"experiment must be one of {', '.join(known)}; got {name!r}")
    entry = known[name]
    keys = {"experiment": f'"{name}"',
            "seeds": ("optional: a number of seeds or a list (default: the preset's)"
                      if entry["neural"] else "a number of seeds (3: seeds 0, 1, 2) or a list"),
            "grid": "a table: each field below, one value or a list of values"}
    if entry["neural"]:
        keys.update(NEURAL_KEYS)
    keys["options"] = f"a table of execution options (not in the config hash): {entry['options']}"
    return {"experiment": name, "table": entry["table"], "summary": entry["summary"],
            "config": entry["config"].__name__, "sweep_file_keys": keys,
            "fields": [spec.to_dict() for spec in field_specs(entry["config"])]}


def _default_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_default_text(v) for v in value) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


def describe_text(name: str) -> str:
    """:func:`describe` as text: the experiment, its sweep-file keys and a table of its fields.

    Examples
    --------
    >>> print(describe_text("landscape"))  # doctest: +NORMALIZE_WHITESPACE
    landscape: Random starts: final objective and ||A^ - A*|| for T = 2 and T = 3
    (config LandscapeConfig, table landscape)
    <BLANKLINE>
    sweep-file keys:
      experiment  "landscape"
      seeds       a number of seeds (3: seeds 0, 1, 2) or a list
      grid        a table: each field below, one value or a list of values
      options     a table of execution options (not in the config hash): none
    <BLANKLINE>
    field    type  default  allowed                             meaning
    d        int   6        an integer >= 1                     input and output dimension
    T        int   2        an integer >= 1                     number of tasks
    k        int   1        an integer >= 1; <= d               rank of the true offsets and of the adapters
    starts   int   100      an integer >= 1                     random starts per ground-truth family (per seed)
    solver   str   "lbfgs"  one of 'exact', 'lbfgs', 'paper'    fit_lora_ml method run from each start
    """
    record = describe(name)
    lines = [f"{name}: {record['summary']}",
             f"(config {record['config']}, table {record['table']})", "", "sweep-file keys:"]
    width = max(map(len, record["sweep_file_keys"]))
    lines += [f"  {key:<{width}}  {text}" for key, text in record["sweep_file_keys"].items()]
    rows = [("field", "type", "default", "allowed", "meaning")]
    rows += [(f["name"], f["type"], _default_text(f["default"]), f["range"], f["help"])
             for f in record["fields"]]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines.append("")
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(r[:4], widths)) + "  " + r[4]
              for r in rows]
    return "\n".join(lines)


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def sweeps_markdown() -> str:
    """The text of ``docs/sweeps.md``: every experiment's sweep-file keys and fields."""
    out = [
        "# Sweepable fields",
        "",
        "<!-- Generated from the config classes by `make docs` (lowrank-theory describe "
        "--docs docs); do not edit: tests/test_docs_generated.py fails when it is out of "
        "date. -->",
        "",
        "A sweep (a sweep file run with `lowrank-theory reproduce --config FILE.toml`, or "
        "`lowrank-theory reproduce --only EXPERIMENT --set FIELD=V1,V2`) sets any field below; "
        "the others keep their defaults (for a neural experiment, the preset's values). The "
        "sweep is the Cartesian product of the values given. Values are checked before "
        "anything runs. `lowrank-theory describe EXPERIMENT [--json]` prints the same "
        "tables. docs/guide.md, recipe 5, shows a sweep file and its resume.",
        "",
        "A neural sweep file starts from its preset's default point (shallow: d = 10, T = 3; "
        "vision: every retraining method, run as one config each; language: the one config), "
        "with every step budget scaled by `steps_scale`; a step count set in the grid is taken "
        "as written.",
        "",
    ]
    for name in sweepable():
        record = describe(name)
        out += [f"## {name}", "", f"{_md(record['summary'])} (config `{record['config']}`, "
                f"table `{record['table']}`).", ""]
        out += ["| key | meaning |", "| --- | --- |"]
        out += [f"| `{key}` | {_md(text)} |" for key, text in record["sweep_file_keys"].items()]
        out += ["", "| field | type | default | allowed | meaning |",
                "| --- | --- | --- | --- | --- |"]
        out += [f"| `{f['name']}` | `{f['type']}` | `{_default_text(f['default'])}` | "
                f"{_md(f['range'])} | {_md(f['help'])} |" for f in record["fields"]]
        out.append("")
    return "\n".join(out)
