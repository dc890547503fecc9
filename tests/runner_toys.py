"""Toy experiments for the runner tests, importable by worker processes and child scripts.

Their rows are a closed form of (config, seed), so a table can be checked against an
independent computation, and they run in microseconds unless they are meant to be slow.
"""

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from lowrank_theory.simulations.configs import ExperimentConfig, PhaseConfig, Sweep
from lowrank_theory.simulations.runner import Experiment

#: Environment variable naming the folder where ``run_sleepy`` leaves a marker per worker.
MARKER_ENV = "RUNNER_TOY_MARKERS"

SWEEP = Sweep(tuple(PhaseConfig(d=4, T=T, k=1) for T in range(1, 5)), seeds=(0, 1, 2))


def expected_value(T: int, seed: int, row: int, scale: float = 1.0) -> float:
    """The ``value`` column of the toys: a closed form of (config, seed, row)."""
    return scale * (T * 100 + seed + row / 8)


def run_value(config, seeds, *, rows: int = 1, scale: float = 1.0) -> pd.DataFrame:
    """``rows`` rows per seed: ``value`` from :func:`expected_value` and a string ``label``."""
    return pd.DataFrame({
        "seed": [s for s in seeds for _ in range(rows)],
        "row": [r for _ in seeds for r in range(rows)],
        "value": [expected_value(config.T, s, r, scale) for s in seeds for r in range(rows)],
        "label": [f"T{config.T}" for _ in seeds for _ in range(rows)],
    })


def run_slow(config, seeds) -> pd.DataFrame:
    """:func:`run_value` after 0.15 s, so that a sweep can be killed midway."""
    time.sleep(0.15)
    return run_value(config, seeds)


def run_big(config, seeds) -> pd.DataFrame:
    """:func:`run_value` with 20,000 rows per seed (about 0.7 MB of CSV)."""
    return run_value(config, seeds, rows=20_000)


def run_sleepy(config, seeds) -> pd.DataFrame:
    """Leave ``started-<pid>`` in ``$RUNNER_TOY_MARKERS``, then sleep for a minute."""
    Path(os.environ[MARKER_ENV], f"started-{os.getpid()}").touch()
    time.sleep(60)
    return run_value(config, seeds)


# The toy runs any config with a ``T`` field; tests hand it VaryConfig sweeps too.
TOY = Experiment("toy", "toy", "none", run_value, SWEEP, SWEEP, options=("rows", "scale"),
                 config_type=ExperimentConfig)
SLOW = Experiment("slow", "slow", "none", run_slow, SWEEP, SWEEP)
BIG = Experiment("big", "big", "none", run_big, SWEEP, SWEEP)
SLEEPY = Experiment("sleepy", "sleepy", "none", run_sleepy, SWEEP, SWEEP)


#: A child process that takes the flock of ``argv[1]``, writes ``argv[2]`` into it (a pid that
#: may be a lie), says ``locked`` and sleeps.
_HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, sys.argv[2].encode())
print("locked", flush=True)
time.sleep(60)
"""


@contextlib.contextmanager
def lock_held_by_another_process(path, written="4242\n"):
    """Yield a child process that holds the flock of ``path``, which says ``written``."""
    child = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path), written],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "locked"
        yield child
    finally:
        child.kill()
        child.wait()
