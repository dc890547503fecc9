"""One grammar across ``check``, ``reproduce`` and ``neural``: the same option spellings, the
same ``--only`` and seed forms, and stdout that holds only the result (a table or JSON) while
progress goes to stderr."""

import argparse
import json

import pytest
from lowrank_theory.cli import build_parser, main


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


def _options(name: str) -> dict[str, argparse.Action]:
    return {flag: action for action in _subparser(name)._actions for flag in action.option_strings}


#: The shared options each command has (where they make sense: ``check`` writes no files and
#: runs in one process).
SHARED = {
    "check": {"--only", "--seed", "--json"},
    "reproduce": {"--only", "--seed", "--seeds", "--out", "--jobs", "--json"},
    "neural": {"--only", "--seed", "--seeds", "--out", "--jobs", "--json"},
}


@pytest.mark.parametrize("command", list(SHARED))
def test_shared_options_are_spelled_alike(command):
    """Each command has its shared options, with the same metavar and no other spelling of
    them (no --seed-count, --output, --workers; --format only for figure files, never for
    the output, which is --json)."""
    options = _options(command)
    assert SHARED[command] <= set(options)
    metavars = {"--seed": "S", "--seeds": "N", "--out": "DIR", "--jobs": "N", "--only": "NAME"}
    for flag in SHARED[command] & set(metavars) - {"--seed"}:
        assert options[flag].metavar == metavars[flag], (command, flag)
    if "--seeds" in options:
        assert options["--seed"].metavar == "S"
    for other in ("--seed-count", "--output", "--outdir", "--workers", "--nproc"):
        assert other not in options
    if "--format" in options:
        assert "png, pdf, svg" in options["--format"].help


@pytest.mark.parametrize("forms", [["a", "b"], ["a", "--only", "b"], ["a,b"]])
@pytest.mark.parametrize("command", ["check", "reproduce", "neural"])
def test_only_takes_the_same_three_forms(command, forms):
    names = {"check": ["sr-rank", "truth-global"], "reproduce": ["rate", "phase"],
             "neural": ["vision", "shallow"]}[command]
    argv = [names[0] if f == "a" else names[1] if f == "b" else
            ",".join(names) if f == "a,b" else f for f in forms]
    assert build_parser().parse_args([command, "--only", *argv]).only == names


@pytest.mark.parametrize("command", ["reproduce", "neural"])
def test_seed_and_seeds_mean_the_same_everywhere(command):
    """--seeds N is seeds 0..N-1, --seed S the one seed S, and the two exclude each other."""
    from lowrank_theory.cli._args import selected_seeds

    extra = ["--experiment", "shallow"] if command == "neural" else []
    parse = build_parser().parse_args
    assert selected_seeds(parse([command, *extra, "--seeds", "3"])) == (0, 1, 2)
    assert selected_seeds(parse([command, *extra, "--seed", "7"])) == (7,)
    with pytest.raises(SystemExit):
        parse([command, *extra, "--seed", "1", "--seeds", "2"])


def test_reproduce_json_is_alone_on_stdout(tmp_path, capsys):
    assert main(["reproduce", "--only", "phase", "--seed", "0", "--out", str(tmp_path),
                 "--no-figures", "--json"]) == 0
    out, err = capsys.readouterr()
    record = json.loads(out)
    assert record["experiments"][0]["experiment"] == "phase"
    assert "reproduce --quick: phase" in err and "done in" in err


def test_neural_json_is_alone_on_stdout(tmp_path, capsys):
    """``neural --json``: stdout is one JSON object (the run and the summary rows); the
    opening line is on stderr."""
    pytest.importorskip("torch")
    assert main(["neural", "--experiment", "shallow", "--steps-scale", "0.0005", "--seed", "0",
                 "--jobs", "1", "--threads", "1", "--out", str(tmp_path), "--json"]) == 0
    out, err = capsys.readouterr()
    record = json.loads(out)
    assert record["run"]["computed"] == record["run"]["units"] > 0
    assert {row["method"] for row in record["summary"]} == {"sr", "lora_ml"}
    assert all("fit_error" in row and row["count"] == 1 for row in record["summary"])
    assert err.startswith("neural shallow (cpu") and "{" not in err


def test_check_table_and_json_keep_progress_off_stdout(capsys):
    assert main(["check", "--only", "sr-rank", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)[0]["name"] == "sr-rank" and "sr-rank: holds" in err
