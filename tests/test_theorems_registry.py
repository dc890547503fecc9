"""The check registry and the ``check`` subcommand: every check is one record with a negative
control that fails, a kind, instance settings, a Python handle named after it, and a JSON record
that says what its numbers mean."""

import json
import re
from dataclasses import replace

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import lowrank_theory as lt
from lowrank_theory import cli
from lowrank_theory import theorems as th
from lowrank_theory.theorems import record, report
from lowrank_theory.theorems.instances import random_covariance
from lowrank_theory.theorems.result import make_result

#: The checks added with the kinds and controls; they must hold on every seed tried.
NEW_CHECKS = ["zero-saddle", "zero-t1-global", "sr-adapt-rank", "sr-floor-every-n",
              "recovery-paper-protocol", "recovery-boundary", "sample-scaling-lora-ml",
              "sample-scaling-sr"]


@pytest.fixture
def patch_record(monkeypatch):
    """Replace one record of the registry for the test (the registry itself is read-only)."""

    def patch(name, **changes):
        monkeypatch.setitem(th.CHECKS._records, name, replace(th.CHECKS[name], **changes))

    return patch


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
    distinct seed stream, instance settings whose ranges are ordered, a solver, the meaning of
    its numbers, a one-line statement and either a runner on a given family or the reason it
    builds its own instances; the kinds are the classification of docs/theory.md, section 14."""
    keys = [rec.key for rec in th.CHECKS.values()]
    assert len(set(keys)) == len(keys) == len(th.CHECKS)
    for name, rec in th.CHECKS.items():
        assert rec.name == name and rec.kind in th.KINDS
        assert re.fullmatch(r"\d+(\.\d+)?", rec.section)
        s = rec.settings
        for lo, hi in (s.d, s.k, s.T):
            assert 1 <= lo <= hi
        assert s.families >= 1 and rec.solver and rec.predicted and rec.measured
        assert rec.control_note and rec.statement and "\n" not in rec.statement
        assert (rec.on_family is None) == bool(rec.own_instances)
        assert rec.covariance == "any" or rec.covariance.startswith(("identity: ", "shared: "))
    consistency = {"rank-2k", "t2-hyperbolic", "t2-rank-3k", "t1-nonidentifiable", "truth-global",
                   "rotation-invariance", "sr-global-minimum", "sr-floor-every-n",
                   "zero-t1-global", "hessian-exact"}
    assert {n for n, s in th.CHECKS.items() if s.kind == "consistency"} == consistency
    assert {n for n, s in th.CHECKS.items() if s.kind == "info"} == {
        "independence-needed", "relaxation", "recovery-paper-protocol", "recovery-boundary",
        "sample-scaling-lora-ml", "sample-scaling-sr", "asymmetric-retraining"}
    theorems = {n for n, s in th.CHECKS.items() if s.kind == "theorem"}
    assert len(theorems) >= 14 and {"e2e-finite-sample", "t2-paper-protocol", "ft-rate",
                                    "recovery-general-covariance",
                                    "sr-floor-general-covariance"} <= theorems


@pytest.mark.parametrize("name", [n for n, r in th.CHECKS.items() if r.on_family is not None])
def test_covariance_field_agrees_with_what_the_check_applies_to(name):
    """A family the record draws itself, given a shared covariance and then one per task, is
    accepted or skipped as the record's ``covariance`` says: "any" takes both, "shared" skips
    the per-task one, "identity" skips both -- with a reason that names the covariance."""
    rec = th.CHECKS[name]
    rng = np.random.default_rng(0)
    fam = rec.generate(rng, rec.settings, 0)
    assert rec.skip_reason(fam) is None, (name, rec.skip_reason(fam))
    shared = lt.TaskFamily(fam.A_star, fam.U_star, fam.sigma, random_covariance(fam.d, 10.0, rng))
    per_task = lt.TaskFamily(fam.A_star, fam.U_star, fam.sigma,
                             np.stack([random_covariance(fam.d, 10.0, rng) for _ in range(fam.T)]))
    kind = rec.covariance.split(":")[0]
    for family, accepted in ((shared, kind in ("any", "shared")), (per_task, kind == "any")):
        reason = rec.skip_reason(family)
        assert (reason is None) == accepted, (name, reason)
        assert reason is None or "covariance" in reason


def test_registry_refuses_duplicates_and_records_without_a_runner():
    """Two records with one name or one seed stream, a name with '_' (it could not be told
    from its handle), and a record with neither a runner on a family nor a reason are refused."""
    rec = th.CHECKS["sr-rank"]
    with pytest.raises(ValueError, match="duplicate"):
        th.Registry([rec, replace(rec, key=999)])
    with pytest.raises(ValueError, match="seed stream"):
        th.Registry([rec, replace(rec, name="other")])
    with pytest.raises(ValueError, match="'_'"):
        th.Registry([replace(rec, name="sr_rank")])
    with pytest.raises(ValueError, match="on_family"):
        replace(rec, on_family=None)
    with pytest.raises(ValueError, match="kind"):
        replace(rec, kind="lemma")


@pytest.mark.parametrize("name", list(th.CHECKS))
def test_printed_name_is_the_python_handle(name):
    """The rule of lowrank_theory.theorems: the check printed as x-y is CHECKS["x-y"], also
    CHECKS.x_y, and its function is lowrank_theory.theorems.check_x_y (exported)."""
    rec = th.CHECKS[name]
    handle = "check_" + name.replace("-", "_")
    assert rec.handle == handle == th.handle_name(name)
    assert getattr(th, handle) is rec.check and handle in th.__all__
    assert getattr(th.CHECKS, name.replace("-", "_")) is rec
    assert callable(rec.check) and rec.check.__doc__


def test_registry_attribute_access_says_which_name_is_missing():
    """An unknown attribute names the check it looked for (negative control of the rule)."""
    with pytest.raises(AttributeError, match="no check named 'recovery-t4'"):
        th.CHECKS.recovery_t4  # noqa: B018
    assert "recovery_t3" in dir(th.CHECKS)


def test_former_function_names_are_aliases_of_the_handles():
    """The functions renamed after their checks keep their former names as aliases."""
    for old, new in th.FORMER_NAMES.items():
        assert getattr(th, old) is getattr(th, new), old


def test_former_public_names_still_import():
    """The names of the former single module still import from lowrank_theory.theorems."""
    former = ["CheckResult", "CHECKS", "check_sr_global_minimum", "check_sr_rank", "check_sr_floor",
              "check_sr_plateau", "check_truth_global_minimum", "check_rotation_invariance",
              "check_zero_is_stationary", "check_rank_bound", "check_exact_recovery",
              "independence_counterexample", "check_independence_needed", "hyperbolic_minimum",
              "check_hyperbolic_family", "check_strict_saddle", "check_gradient_finds_global",
              "check_rank_3k_fine_tuning", "check_t1_nonidentifiable", "find_spurious_minimum",
              "check_spurious_minimum", "check_relaxation",
              "check_exact_hessian", "global_minima_from_random_starts", "run_checks"]
    assert not [name for name in former if not hasattr(th, name)]
    assert set(th.__all__) <= set(dir(th))


def test_settings_scale_and_serialise():
    """--thorough multiplies the families; the JSON form names the covariances in words."""
    s = th.CHECKS["sr-global-minimum"].settings
    assert s.scaled(5).families == 5 * s.families
    out = s.to_dict()
    assert out["covariances"] == ["identity", "random SPD, condition 100",
                                  "random SPD per task, condition 100"]
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


def test_run_checks_refuses_a_result_of_another_kind(patch_record):
    """A runner whose result carries another kind than its registry entry is a registry bug."""
    wrong = make_result("sr-rank", "c", "r", 0.0, 0.0, 0.0, 1e-9, kind="info")
    patch_record("sr-rank", on_family=lambda f, r, s: wrong)
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


def test_cli_exit_code_one_when_a_theorem_or_consistency_check_fails(patch_record, capsys):
    """Exit status 1 when a theorem or consistency check fails; an info check never fails the run."""
    for name, code in (("sr-rank", 1), ("truth-global", 1), ("relaxation", 0)):
        failing = make_result(name, "c", "r", 0.0, 1.0, 1.0, 1e-9, kind=th.CHECKS[name].kind)
        patch_record(name, run=lambda rng, s, f=failing: f)
        assert cli.main(["check", "--only", name]) == code
    assert "FAILED: truth-global" in capsys.readouterr().out


def test_cli_controls(patch_record, capsys):
    """--controls runs the negative controls: exit 0 when all fail, 1 when one holds."""
    assert cli.main(["check", "--controls", "--only", "sr-rank,t2-hyperbolic"]) == 0
    assert "2/2 controls fail as they must" in capsys.readouterr().out
    holding = make_result("sr-rank", "c", "r", 0.0, 0.0, 0.0, 1e-9)
    patch_record("sr-rank", control=lambda seed: holding)
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
    for name, rec in records.items():
        settings = rec["instance_settings"]
        assert settings == th.CHECKS[name].settings.to_dict(), name
        assert {"d", "k", "T", "families", "covariances", "samples_per_task"} <= set(settings)
        assert rec["solver"]


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


# --------------------------------------------------------------------------- --list, --family, --seeds
def test_cli_list_prints_names_kinds_and_statements(capsys):
    """--list prints one line per check: its name, kind and one-line statement, in registry order."""
    assert cli.main(["check", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(th.CHECKS)
    for line, rec in zip(lines, th.CHECKS.values()):
        assert line.split()[1] == rec.kind and line.endswith(rec.statement)


@pytest.fixture(scope="module")
def sigma_100_family_file(tmp_path_factory):
    """A saved T = 3 family with a shared input covariance of condition number 100."""
    rng = np.random.default_rng(5)
    fam = lt.TaskFamily.random(d=6, k=1, T=3, seed=rng, Sigma=random_covariance(6, 100.0, rng))
    return fam.save(tmp_path_factory.mktemp("fam") / "sigma100.npz"), fam


def test_cli_family_runs_what_applies_to_a_condition_100_family(sigma_100_family_file, capsys):
    """check --family on a saved family with Sigma of condition 100 (T = 3): every check that
    applies runs and holds; every other one is listed once with why it was skipped (T = 2 or
    T = 1 claims, identity-only claims, checks that build their own instances); together they
    cover the registry. The reasons are the records' own (``skip_reason``)."""
    path, fam = sigma_100_family_file
    assert cli.main(["check", "--family", str(path), "--json", "--seed", "1"]) == 0
    records = json.loads(capsys.readouterr().out)
    ran = {r["name"]: r for r in records if "skipped" not in r}
    skipped = {r["name"]: r["skipped"] for r in records if "skipped" in r}
    assert set(ran) | set(skipped) == set(th.CHECKS) and not set(ran) & set(skipped)
    assert all(r["holds"] for r in ran.values() if r["kind"] != "info"), \
        [(n, r["detail"]) for n, r in ran.items() if not r["holds"]]
    assert {"e2e-finite-sample", "recovery-general-covariance", "sr-floor-general-covariance",
            "sr-rank", "truth-global", "zero-saddle", "ft-rate", "rank-2k"} <= set(ran)
    assert "condition 100" in ran["sr-floor-general-covariance"]["detail"]
    assert skipped["t2-hyperbolic"] == "needs T = 2"
    assert skipped["t1-nonidentifiable"] == "needs T = 1"
    assert skipped["sr-floor"].startswith("needs identity covariance")
    assert skipped["spurious-minima"].startswith("builds its own instances")
    for name, reason in skipped.items():
        assert reason == th.CHECKS[name].skip_reason(fam), name


def test_cli_family_text_lists_one_line_per_skipped_check(sigma_100_family_file, capsys):
    """The text report names each skipped check on its own line with its reason."""
    path, _ = sigma_100_family_file
    assert cli.main(["check", "--family", str(path), "--only", "sr-rank,t2-hyperbolic"]) == 0
    out = capsys.readouterr().out
    assert "skipped t2-hyperbolic: needs T = 2" in out
    assert "1/1 theorem and consistency checks hold" in out and "1 checks skipped" in out


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    (b"not an archive", "is not a family file"),
    ({"A_star": np.eye(2)}, "missing ['U_star', 'sigma']"),
    ({"A_star": np.eye(2), "U_star": np.ones((1, 2, 1)), "sigma": 0.1, "Sigma": -np.eye(2)},
     "positive definite"),
])
def test_cli_family_bad_file_exits_2_naming_the_file(tmp_path, content, message, capsys):
    """A missing, corrupt, incomplete or invalid family file is a usage error (exit 2) whose
    message names the file and what is wrong, with no traceback."""
    path = tmp_path / "bad.npz"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        np.savez(path, **content)
    assert cli.main(["check", "--family", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and message in err and "Traceback" not in err


def test_run_on_family_reports_a_refusal_during_the_run_as_a_skip(patch_record):
    """A check whose function refuses the instance while running (NotApplicable) is reported
    as skipped with the function's reason, not as a failure."""
    def refuse(family, rng, settings):
        raise th.NotApplicable("sr-rank: the columns are dependent here.")

    patch_record("sr-rank", on_family=refuse)
    results, skipped = th.run_on_family(lt.TaskFamily.random(d=4, k=1, T=3, seed=0),
                                        only=["sr-rank", "truth-global"])
    assert [r.name for r in results] == ["truth-global"]
    assert skipped == [th.Skipped("sr-rank", "theorem", "the columns are dependent here")]


def test_record_run_on_refuses_what_it_does_not_apply_to():
    """record.run_on raises NotApplicable with the reason for a family outside its claim."""
    with pytest.raises(th.NotApplicable, match="needs T = 2"):
        th.CHECKS.t2_hyperbolic.run_on(lt.TaskFamily.random(d=4, k=1, T=3, seed=0))
    with pytest.raises(th.NotApplicable, match="builds its own instances"):
        th.CHECKS["spurious-minima"].run_on(lt.TaskFamily.random(d=3, k=1, T=3, seed=0))


def test_cli_seeds_runs_each_seed_and_fails_on_any(patch_record, capsys):
    """--seeds N runs seeds 0..N-1 with one summary line each; exit 1 names the failing seeds."""
    assert cli.main(["check", "--seeds", "2", "--only", "sr-rank,t2-hyperbolic"]) == 0
    out = capsys.readouterr().out
    assert "seed 0: 2/2" in out and "seed 1: 2/2" in out and "held on 2/2 seeds" in out

    def fail_on_seed_1(rng, s):
        holds = rng.bit_generator.seed_seq.entropy[0] != 1
        return make_result("sr-rank", "c", "r", 0.0, 0.0, 0.0 if holds else 1.0, 1e-9)

    patch_record("sr-rank", run=fail_on_seed_1)
    assert cli.main(["check", "--seeds", "3", "--only", "sr-rank"]) == 1
    assert "failures on seeds [1]" in capsys.readouterr().out


def test_cli_modes_cannot_be_combined(capsys):
    """--list, --controls, --family and --seeds are one mode each."""
    assert cli.main(["check", "--list", "--controls"]) == 2
    assert "--list and --controls cannot be combined" in capsys.readouterr().err


def test_vacuous_instances_do_not_count_and_all_vacuous_fails():
    """A run whose instances all had nothing to check fails; vacuous ones are left out otherwise."""
    empty = record.vacuous("rank-2k", "consistency", "no global minimum reached")
    real = make_result("rank-2k", "c", "r", 0.0, 0.0, 0.0, 1e-9, kind="consistency")
    assert not record.aggregate_instances("rank-2k", "consistency", [empty]).holds
    agg = record.aggregate_instances("rank-2k", "consistency", [empty, real])
    assert agg.holds and agg.instances == 1 and "1 instance(s) had nothing" in agg.detail


def test_docs_table_lists_every_check_with_its_kind_section_and_covariances():
    """docs/theory.md, section 14, has one row per record with the record's kind, section and
    covariance kind (so the document cannot drift from the registry); a row for a check that
    does not exist fails too."""
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "theory.md").read_text("utf-8")
    rows = re.findall(r"^\| `([a-z0-9-]+)` \| (\w+) \| ([\d.]+) \| (\w+) \|", text, re.M)
    assert len(rows) == len({r[0] for r in rows}) == len(th.CHECKS)
    for name, kind, section, covariance in rows:
        rec = th.CHECKS[name]
        assert (kind, section, covariance) == (rec.kind, rec.section,
                                               rec.covariance.split(":")[0]), name
