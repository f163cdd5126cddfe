"""Shared fixtures: small simulated export packages (Contract 2) and one full `culturelab analyze` run."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from filelock import FileLock

from culturelab.analysis.simulate import SimulationOptions, simulate, write_package
from culturelab.platform.cli import main

# test helpers beside this file (the independent generator) import by name under --import-mode=importlib
sys.path.insert(0, str(Path(__file__).parent))

SMALL = SimulationOptions(participants_per_group=12, stimuli_per_culture=6, likert_trials=15, slider_trials=9,
                          choice_trials=9, careless_fraction=0.1, attention_fail_fraction=0.05,
                          incomplete_fraction=0.05, seed=3)


def make_package(path: Path, opts: SimulationOptions = SMALL, fmt: str = "csv") -> Path:
    tables, meta = simulate(opts)
    return write_package(tables, meta, path, fmt)


def _shared_dir(tmp_path_factory) -> Path:
    """A folder all pytest-xdist workers of this run share (the pytest-xdist docs' pattern). Without xdist the
    base temp's parent is shared by every run, so a stale analysis would be reused: use the run's own."""
    base = tmp_path_factory.getbasetemp()
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "culturelab-analysis-shared"


@pytest.fixture(scope="session")
def small_package(tmp_path_factory) -> Path:
    shared = _shared_dir(tmp_path_factory)
    shared.mkdir(exist_ok=True)
    with FileLock(str(shared / "package.lock")):
        pkg = shared / "pkg"
        if not (pkg / "datapackage.json").exists():
            make_package(pkg)
    return pkg


@pytest.fixture
def package_copy(tmp_path) -> Path:
    """A fresh, writable small package for tests that break it on purpose."""
    return make_package(tmp_path / "pkg", replace(SMALL, participants_per_group=6, seed=11))


@pytest.fixture(scope="session")
def analysed(small_package, tmp_path_factory) -> tuple[dict, str, Path]:
    """`culturelab analyze` run once through the real CLI entry point: (results.json, report.html, out dir).

    Run once per test session, not once per xdist worker (it fits six mixed models). The CLMM limit of 150
    responses makes it fit a subsample, which the tests check is stated."""
    shared = _shared_dir(tmp_path_factory)
    out = shared / "out"
    with FileLock(str(shared / "analysis.lock")):
        if not (out / "results.json").exists():
            result = CliRunner().invoke(main, ["analyze", str(small_package), "--out", str(out),
                                               "--clmm-max-responses", "150"])
            assert result.exit_code == 0, result.output
    return (json.loads((out / "results.json").read_text(encoding="utf-8")),
            (out / "report.html").read_text(encoding="utf-8"), out)


def _edit_csv(path: Path, edit) -> None:
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    edit(df).to_csv(path, index=False)


@pytest.fixture
def edit_csv():
    """Rewrite one table of a package through a function of its DataFrame (all columns as text)."""
    return _edit_csv


@pytest.fixture
def small_opts() -> SimulationOptions:
    return replace(SMALL)


@pytest.fixture
def make_pkg():
    """make_pkg(path, opts=SMALL, fmt="csv"): write a simulated package and return its folder."""
    return make_package
