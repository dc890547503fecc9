"""The built wheel installs one top-level name, ``lowrank_theory``, and its commands work from it.

The wheel is built from a copy of the working tree in a temporary folder (so no ``build/`` or
stale file of the checkout enters it, and nothing is written into the checkout; no build
isolation: setuptools comes from the test environment) and unpacked into a temporary ``site``
folder. Every command then runs from a
folder outside the repository with that folder first on the path, so what is imported is the
wheel's copy, never the source tree's folders.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    pytest.importorskip("setuptools")
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "results", "__pycache__", ".*_cache",
        ".hypothesis"))
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp / "dist"), str(source)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp / "dist").glob("lowrank_theory-*.whl")
    site = tmp / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    return wheel, site


def _run(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_wheel_has_one_top_level_name(installed):
    """Every file of the wheel's code sits under lowrank_theory/; simulations, figures and cli
    are installed as lowrank_theory.simulations, .figures and .cli."""
    wheel, _ = installed
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()
                if not name.split("/")[0].endswith(".dist-info")}
        names = set(archive.namelist())
    assert tops == {"lowrank_theory"}
    for module in ("simulations/runner.py", "figures/plots.py", "cli/reproduce.py",
                   "simulations/neural/configs.py", "theorems/registry.py"):
        assert f"lowrank_theory/{module}" in names


def test_generic_names_are_not_importable(installed, tmp_path):
    """From the installed wheel, ``import simulations`` and ``import figures`` fail."""
    _, site = installed
    for name in ("simulations", "figures", "cli"):
        out = _run(site, tmp_path, "-c", f"import {name}")
        assert out.returncode == 1 and "ModuleNotFoundError" in out.stderr, name
    ok = _run(site, tmp_path, "-c", "import lowrank_theory.simulations.runner as r, "
              "lowrank_theory.figures as f; print(r.__file__); print(f.__file__)")
    assert ok.returncode == 0, ok.stderr
    assert all(line.startswith(str(site)) for line in ok.stdout.split())


def test_every_command_runs_from_the_wheel(installed, tmp_path):
    """check, reproduce (a sweep file with figures) and the help of every subcommand run from
    the installed wheel and write only into --out."""
    _, site = installed
    for command in ("check", "reproduce", "neural"):
        out = _run(site, tmp_path, "-m", "lowrank_theory", command, "--help")
        assert out.returncode == 0 and "usage:" in out.stdout, out.stderr
    check = _run(site, tmp_path, "-m", "lowrank_theory", "check", "--only", "sr-rank")
    assert check.returncode == 0, check.stderr
    sweep = tmp_path / "cells.toml"
    sweep.write_text('experiment = "phase"\nseeds = 1\n[grid]\nd = 4\nT = [2, 3]\n')
    out_dir = tmp_path / "out"
    run = _run(site, tmp_path, "-m", "lowrank_theory", "reproduce", "--config", str(sweep),
               "--out", str(out_dir))
    assert run.returncode == 0, run.stderr
    assert (out_dir / "phase.csv").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cells.toml", "out"]
    figures = _run(site, tmp_path, "-m", "lowrank_theory.figures", str(out_dir), "--force")
    assert figures.returncode == 0, figures.stderr
