"""The check registry and the ``check`` subcommand: every check has a negative control that
fails, a kind, instance settings, and a JSON record that says what its numbers mean."""

import json
import re
from dataclasses import replace

import pytest
from threadpoolctl import threadpool_limits

from lowrank_theory import cli
from lowrank_theory import theorems as th
from lowrank_theory.theorems import instances, report
from lowrank_theory.theorems.result import make_result

#: The checks added with the kinds and controls; they must hold on every seed tried.
NEW_CHECKS = ["zero-saddle", "zero-t1-global", "sr-adapt-rank", "sr-floor-every-n",
              "recovery-paper-protocol", "recovery-boundary", "sample-scaling-lora-ml",
              "sample-scaling-sr"]


@pytest.fixture(autouse=True)
def _single_threaded_blas():
    """One BLAS thread for L-BFGS-B's tiny calls (see tests/test_theorems.py)."""
    with threadpool_limits(1):
        yield


# --------------------------------------------------------------------------- registry
@pytest.mark.parametrize("name", list(th.CHECKS))
def test_negative_control_fails(name):
    """Check the checker: each check, run on its control (a perturbed answer, a stub that
    returns the truth, or a violated assumption), reports failure with a non-positive margin.
    A check whose control held could not have failed."""
    res = th.run_controls(seed=0, only=[name])[0]
    assert res.name == name and res.kind == th.CHECKS[name].kind
    assert not res.holds, f"the control of {name} held: {res.detail}"
    assert res.margin <= 0


def test_registry_is_complete_and_consistent():
    """Every check has a kind among theorem/consistency/info, a docs/theory.md section, a
    distinct seed stream, instance settings whose ranges are ordered, a solver and the meaning
    of its numbers; the kinds match the issue's classification."""
    keys = [spec.key for spec in th.CHECKS.values()]
    assert len(set(keys)) == len(keys)
    for name, spec in th.CHECKS.items():
        assert spec.name == name and spec.kind in th.KINDS
        assert re.fullmatch(r"\d+(\.\d+)?", spec.section)
        s = spec.settings
        for lo, hi in (s.d, s.k, s.T):
            assert 1 <= lo <= hi
        assert s.families >= 1 and spec.solver and spec.predicted and spec.measured
        assert spec.control_note
    consistency = {"rank-2k", "t2-hyperbolic", "t2-rank-3k", "t1-nonidentifiable", "truth-global",
                   "rotation-invariance", "sr-global-minimum", "sr-floor-every-n",
                   "zero-t1-global", "hessian-exact"}
    assert {n for n, s in th.CHECKS.items() if s.kind == "consistency"} == consistency
    assert {n for n, s in th.CHECKS.items() if s.kind == "info"} == {
        "independence-needed", "relaxation", "recovery-paper-protocol", "recovery-boundary",
        "sample-scaling-lora-ml", "sample-scaling-sr"}


def test_former_public_names_still_import():
    """The names of the former single module still import from lowrank_theory.theorems."""
    former = ["CheckResult", "CHECKS", "check_sr_global_minimum", "check_sr_rank", "check_sr_floor",
              "check_sr_plateau", "check_truth_global_minimum", "check_rotation_invariance",
              "check_zero_is_stationary", "check_rank_bound", "check_exact_recovery",
              "independence_counterexample", "check_independence_needed", "hyperbolic_minimum",
              "check_hyperbolic_family", "check_strict_saddle", "check_gradient_finds_global",
              "check_rank_3k_fine_tuning", "check_t1_nonidentifiable", "find_spurious_minimum",
              "check_spurious_minimum", "check_fine_tuning_rate", "check_relaxation",
              "check_exact_hessian", "global_minima_from_random_starts", "run_checks"]
    assert not [name for name in former if not hasattr(th, name)]
    assert set(th.__all__) <= set(dir(th))


def test_every_check_has_a_runner_and_a_control():
    """The registry, the runners and the controls name the same checks."""
    assert set(instances.RUNNERS) == set(instances.CONTROLS) == set(th.CHECKS)


def test_settings_scale_and_serialise():
    """--thorough multiplies the families; the JSON form names the covariances in words."""
    s = th.CHECKS["sr-global-minimum"].settings
    assert s.scaled(5).families == 5 * s.families
    out = s.to_dict()
    assert out["covariances"] == ["identity", "random SPD, condition 10", "random SPD, condition 10"]
    assert out["d"] == [2, 8] and out["samples_per_task"] == [10, 200]
    json.dumps(out)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_new_checks_hold(seed):
    """The split zero-point checks, the corollary's sufficiency, the paper-protocol rates, the
    recovery boundary and the finite-sample scaling hold on seeds 0-2 (the README runs 0-9),
    each reporting the kind its registry entry gives (the runner does not relabel results)."""
    for res in th.run_checks(seed=seed, only=NEW_CHECKS):
        assert res.holds, f"{res.name} (seed {seed}): {res.detail}"
        assert res.kind == th.CHECKS[res.name].kind


def test_run_checks_refuses_a_result_of_another_kind(monkeypatch):
    """A runner whose result carries another kind than its registry entry is a registry bug."""
    wrong = make_result("sr-rank", "c", "r", 0.0, 0.0, 0.0, 1e-9, kind="info")
    monkeypatch.setitem(th.CHECKS, "sr-rank", replace(th.CHECKS["sr-rank"], runner=lambda r, s: wrong))
    with pytest.raises(RuntimeError, match="kind"):
        th.run_checks(only=["sr-rank"])


def test_run_checks_rejects_unknown_name():
    """The Python entry point rejects unknown names with the list of valid ones."""
    with pytest.raises(ValueError, match="valid names"):
        th.run_checks(only=["nope"])
    with pytest.raises(ValueError, match="valid names"):
        th.run_controls(only=["nope"])


def test_same_seed_same_instances_whatever_the_subset():
    """Each check draws from its own stream: run alone or after others, it gives the same record."""
    alone = th.run_checks(seed=4, only=["sr-rank"])[0]
    after = th.run_checks(seed=4, only=["truth-global", "sr-rank"])[1]
    assert alone == after


# --------------------------------------------------------------------------- symbols
def test_glossary_defines_the_symbols_of_every_detail():
    """The detail texts use no undefined shorthand (no bare 's' as a scale) and the JSON
    record defines each glossary symbol its text uses."""
    results = th.run_checks(seed=0, only=["recovery-t3", "independence-needed", "t2-hyperbolic",
                                          "zero-saddle", "sample-scaling-sr", "rank-2k"])
    for res in results:
        assert not re.search(r"/s\b", res.detail), res.detail
        record = report.check_record(res)
        for sym in ("scale", "A*", "F", "slope", "lambda_min(H)"):
            token = sym.split("(")[0]
            if re.search(r"(?<![A-Za-z_])" + re.escape(token) + r"(?![A-Za-z_])", res.detail):
                assert token in record["symbols"], (res.name, token)


def test_symbols_in_matches_tokens_not_substrings():
    """'d' is found in 'd=4' but not in 'found'; 'A*' is not read inside 'W*_new - A*x'."""
    assert "d" in report.symbols_in("d=4")
    assert "d" not in report.symbols_in("found")
    assert "A*" in report.symbols_in("|A^-A*|_F")
    assert "s" not in report.symbols_in("slopes")


# --------------------------------------------------------------------------- CLI
def test_cli_json_reports_kind_settings_solver_and_meanings(capsys):
    """--json gives, per check, its kind, instance settings, solver and the meaning of the
    predicted and measured numbers; stdout is nothing but the JSON, progress is on stderr."""
    assert cli.main(["check", "--only", "sr-rank", "t2-hyperbolic", "--json", "--seed", "3"]) == 0
    out, err = capsys.readouterr()
    records = json.loads(out)
    assert [r["name"] for r in records] == ["sr-rank", "t2-hyperbolic"]
    rank = records[0]
    assert rank["kind"] == "theorem" and records[1]["kind"] == "consistency"
    assert rank["instance_settings"]["d"] == [2, 11] and rank["instance_settings"]["families"] == 10
    assert rank["solver"] and rank["predicted_means"] == "min(kT, d)"
    assert rank["section"] == "docs/theory.md, section 4.2"
    assert "d" in rank["symbols"] and rank["holds"] is True
    assert "sr-rank" in err and "t2-hyperbolic" in err


def test_cli_table_groups_by_kind_and_keeps_progress_off_stdout(capsys):
    """The table has one block per kind, in the order theorem, consistency, info; progress
    lines go to stderr only."""
    argv = ["check", "--only", "independence-needed,sr-rank", "--only", "t2-hyperbolic"]
    assert cli.main(argv) == 0
    out, err = capsys.readouterr()
    assert out.index("[theorem]") < out.index("[consistency]") < out.index("[info]")
    assert out.index("sr-rank") < out.index("t2-hyperbolic") < out.index("independence-needed")
    assert "2/2 theorem and consistency checks hold" in out and "symbols:" in out
    assert "1/1 info checks came out as described" in out
    assert "holds" in err and "[" in err
    assert not any(line.lstrip().startswith("[ ") for line in out.splitlines())


@pytest.mark.parametrize("argv", [
    ["--only", "sr-rank", "truth-global"],
    ["--only", "sr-rank", "--only", "truth-global"],
    ["--only", "sr-rank,truth-global"],
    ["--only", "sr-rank,truth-global", "--only", "sr-rank"],
])
def test_cli_only_grammar(argv, capsys):
    """--only a b, --only a --only b and --only a,b select the same checks, once each."""
    assert cli.main(["check", "--json", *argv]) == 0
    assert [r["name"] for r in json.loads(capsys.readouterr().out)] == ["sr-rank", "truth-global"]


def test_cli_unknown_check_lists_valid_names(capsys):
    """An unknown --only name exits with status 2 and a message listing the valid names."""
    with pytest.raises(SystemExit) as exc:
        cli.main(["check", "--only", "sr-rank,no-such-claim"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "no-such-claim" in err and "--only" in err and "spurious-minima" in err


def test_cli_exit_code_one_when_a_theorem_or_consistency_check_fails(monkeypatch, capsys):
    """Exit status 1 when a theorem or consistency check fails; an info check never fails the run."""
    for name, code in (("sr-rank", 1), ("truth-global", 1), ("relaxation", 0)):
        spec = th.CHECKS[name]
        failing = make_result(name, "c", "r", 0.0, 1.0, 1.0, 1e-9, kind=spec.kind)
        monkeypatch.setitem(th.CHECKS, name, replace(spec, runner=lambda rng, s, f=failing: f))
        assert cli.main(["check", "--only", name]) == code
    assert "FAILED: truth-global" in capsys.readouterr().out


def test_cli_controls(monkeypatch, capsys):
    """--controls runs the negative controls: exit 0 when all fail, 1 when one holds."""
    assert cli.main(["check", "--controls", "--only", "sr-rank,t2-hyperbolic"]) == 0
    assert "2/2 controls fail as they must" in capsys.readouterr().out
    holding = make_result("sr-rank", "c", "r", 0.0, 0.0, 0.0, 1e-9)
    monkeypatch.setitem(th.CHECKS, "sr-rank",
                        replace(th.CHECKS["sr-rank"], control=lambda seed: holding))
    assert cli.main(["check", "--controls", "--only", "sr-rank", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)[0]["holds"] is True


def test_cli_seed_validation(capsys):
    """A negative seed is a usage error naming --seed."""
    with pytest.raises(SystemExit) as exc:
        cli.main(["check", "--seed", "-1"])
    assert exc.value.code == 2 and "--seed" in capsys.readouterr().err


#: Symbol-like tokens: a single letter, or a name with a digit, ``_``, ``*`` or ``^`` in it.
_TOKEN = re.compile(r"(?<![A-Za-z0-9_*^'.])[A-Za-z][A-Za-z0-9_*^]*")
#: Code names (``first_order_identifiable``) and the article "a" are not symbols.
_CODE_NAME = re.compile(r"[a-z]{3,}(_[a-z]{3,})+|a")


def _undefined_symbols(text: str) -> set[str]:
    """Symbol-like tokens of ``text`` that no glossary symbol's occurrence covers."""
    covered = {i for p in report._SYMBOL_RE.values() for m in p.finditer(text)
               for i in range(m.start(), m.end())}
    return {m.group() for m in _TOKEN.finditer(text)
            if (len(m.group()) == 1 or re.search(r"[0-9_*^]", m.group()))
            and not _CODE_NAME.fullmatch(m.group()) and m.start() not in covered}


def test_every_record_defines_its_symbols_and_carries_its_settings():
    """Every check and every control at seed 0 (about 10 s on one core): each symbol-like
    token of the claims and detail texts (what ``check`` and ``check --controls`` print) has a
    glossary entry, so ``check --json`` defines it in ``symbols``; and every check's record
    carries its instance settings (d, k, T ranges, families, covariances, samples per task)
    and solver."""
    with threadpool_limits(1):
        checks, controls = th.run_checks(seed=0), th.run_controls(seed=0)
    missing = {}
    for res in checks + controls:
        text = f"{res.claim} {res.detail}"
        if undefined := _undefined_symbols(text):
            missing[res.name] = sorted(undefined)
        assert set(report.check_record(res)["symbols"]) >= {
            s for s in report.GLOSSARY if report._SYMBOL_RE[s].search(text)}
    assert not missing, missing
    records = {r["name"]: r for r in map(report.check_record, checks)}
    assert set(records) == set(th.CHECKS)
    for name, record in records.items():
        settings = record["instance_settings"]
        assert settings == th.CHECKS[name].settings.to_dict(), name
        assert {"d", "k", "T", "families", "covariances", "samples_per_task"} <= set(settings)
        assert record["solver"]


def test_the_symbol_finder_flags_what_the_glossary_lacks():
    """Negative control of the test above: a made-up symbol and a bare letter are flagged,
    defined symbols, powers and transposes are not."""
    assert _undefined_symbols("|Z_q - A*|_F with g=3 and mean Y") == {"Z_q", "g", "Y"}
    assert _undefined_symbols("U*_t^T, sigma^2, N^(-1/2), N(0, 1), A_SR^ - A_SR, a saddle") == set()


def test_symbols_in_reads_notation_not_words():
    """``N(0, 1)`` is a distribution, not N samples; ``s`` in "paper's" is not the rapidity;
    ``sigma^2`` and ``U*_t^T`` use sigma and U*_t."""
    assert set(report.symbols_in("U0 ~ N(0, 1)")) == {"U0", "N(m, v)"}
    assert "s" not in report.symbols_in("the paper's objective")
    assert {"sigma", "U*_t"} <= set(report.symbols_in("k d sigma^2 / n, U*_t U*_t^T"))
    assert set(report.symbols_in("A_SR^ - A_SR")) == {"A_SR^", "A_SR"}
