"""Pre-registered exclusions: defaults catch the planted careless responders; rules come from YAML/JSON."""

from __future__ import annotations

import json
from dataclasses import replace

import pandas as pd
import pytest
from click.testing import CliRunner

from culturelab.analysis.exclusions import (
    ExclusionConfigError,
    ExclusionRules,
    apply_exclusions,
    flow_table,
    longstring,
)
from culturelab.analysis.load import load_package
from culturelab.platform.cli import main


def test_longstring_is_the_longest_identical_run():
    assert longstring(pd.Series([3, 3, 4, 4, 4, 4, 2, 3, 3])) == 4
    assert longstring(pd.Series([], dtype=float)) == 0


@pytest.fixture(scope="module")
def careless_package(tmp_path_factory):
    from culturelab.analysis.simulate import SimulationOptions, simulate, write_package

    opts = SimulationOptions(participants_per_group=20, stimuli_per_culture=6, likert_trials=18, slider_trials=6,
                             choice_trials=6, careless_fraction=0.2, attention_fail_fraction=0.1,
                             incomplete_fraction=0.1, seed=21)
    tables, meta = simulate(opts)
    return write_package(tables, meta, tmp_path_factory.mktemp("careless") / "pkg")


def test_default_rules_catch_each_kind_of_planted_careless_responder(careless_package):
    pkg = load_package(careless_package)
    checks = apply_exclusions(pkg, ExclusionRules())
    r = pkg.responses[pkg.responses["trial_kind"] == "likert"]
    constant = r.groupby("participant_id")["value_num"].nunique() == 1
    fast = pkg.responses.groupby("participant_id")["rt_ms"].median() < 400
    incomplete = pkg.participants.set_index("participant_id")["status"] != "completed"
    failed = (pkg.participants.set_index("participant_id").eval("attention_passed < attention_total"))
    for pid in constant[constant].index:
        assert {"straightlining"} & set(checks.loc[pid, "all_reasons"]) or checks.loc[pid, "reason"] == "incomplete"
    for pid in fast[fast].index:
        assert "too_fast" in checks.loc[pid, "all_reasons"]
    assert (checks.loc[incomplete[incomplete].index, "reason"] == "incomplete").all()
    for pid in failed[failed].index:
        assert "attention" in checks.loc[pid, "all_reasons"]
    assert constant.sum() >= 2 and fast.sum() >= 2 and incomplete.sum() >= 2 and failed.sum() >= 2
    planted = set(constant[constant].index) | set(fast[fast].index) | set(incomplete[incomplete].index) | set(
        failed[failed].index)
    assert set(checks.index[checks["reason"] != ""]) == planted  # no attentive participant is excluded


def test_flow_table_adds_up_by_group(careless_package):
    checks = apply_exclusions(load_package(careless_package), ExclusionRules())
    flow = flow_table(checks)
    removed = flow.loc[[s for s in flow.index if s.startswith("excluded")]].sum()
    assert (flow.loc["exported"] - removed == flow.loc["analysed"]).all()
    assert flow.loc["exported", "total"] == 60


def test_rules_from_yaml_and_json_files(tmp_path, careless_package):
    (tmp_path / "rules.yaml").write_text("too_fast: false\nrt_floor_ms: 250\n")
    (tmp_path / "rules.json").write_text(json.dumps({"straightlining": False, "attention_min_passed": 0.5}))
    y = ExclusionRules.from_file(tmp_path / "rules.yaml")
    j = ExclusionRules.from_file(tmp_path / "rules.json")
    assert (y.too_fast, y.rt_floor_ms, y.straightlining) == (False, 250.0, True)
    assert (j.straightlining, j.attention_min_passed) == (False, 0.5)
    pkg = load_package(careless_package)
    assert "too_fast" not in set(apply_exclusions(pkg, y)["reason"])
    assert "straightlining" not in set(apply_exclusions(pkg, j)["reason"])
    everything_off = replace(ExclusionRules(), incomplete=False, attention=False, too_fast=False,
                             straightlining=False)
    assert (apply_exclusions(pkg, everything_off)["reason"] == "").all()


@pytest.mark.parametrize("text,message", [("speed: 3\n", "unknown option 'speed'"),
                                          ("too_fast: maybe\n", "too_fast must be true or false"),
                                          ("rt_floor_ms: -5\n", "rt_floor_ms must be a non-negative number"),
                                          ("[1, 2\n", "cannot be read")])
def test_bad_rules_file_is_refused(tmp_path, text, message, small_package):
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(ExclusionConfigError, match=message):
        ExclusionRules.from_file(path)
    result = CliRunner().invoke(main, ["analyze", str(small_package), "--out", str(tmp_path / "o"),
                                       "--exclusions", str(path)])
    assert result.exit_code == 2 and message in result.stderr and result.stderr.count("\n") == 1


def test_vectorised_longstring_equals_the_per_participant_definition(careless_package):
    from culturelab.analysis.exclusions import participant_checks

    pkg = load_package(careless_package)
    checks = participant_checks(pkg)
    likert = pkg.responses[pkg.responses["trial_kind"] == "likert"].sort_values(["participant_id", "trial_index"])
    expected = likert.groupby("participant_id")["value_num"].apply(longstring)
    assert (checks.loc[expected.index, "longstring"] == expected).all()


def test_hidden_page_rule_is_opt_in_and_counts_trials_away_longer_than_the_limit(careless_package):
    pkg = load_package(careless_package)
    assert "hidden" not in {r for rs in apply_exclusions(pkg, ExclusionRules())["all_reasons"] for r in rs}
    rules = ExclusionRules.from_dict({"hidden": True, "hidden_trial_ms": 5000, "hidden_max_fraction": 0.1})
    checks = apply_exclusions(pkg, rules)
    r = pkg.responses[pkg.responses["trial_kind"] != "attention"]
    share = (r["hidden_ms"].astype(float) > 5000).groupby(r["participant_id"]).mean()
    flagged = {pid for pid, rs in checks["all_reasons"].items() if "hidden" in rs}
    assert flagged == set(share.index[share > 0.1]) and flagged
