"""Choice trials (mixed logistic, participant-level, Bradley–Terry) and reliability."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from culturelab.analysis.choices import (
    bradley_terry,
    choice_descriptives,
    choice_table,
    ingroup_choice_glmm,
    ingroup_choice_participants,
)
from culturelab.analysis.load import load_package
from culturelab.analysis.reliability import krippendorff_alpha, krippendorff_alpha_ci, split_half
from culturelab.analysis.simulate import SimulationOptions


@pytest.fixture(scope="module")
def choices(tmp_path_factory):
    from culturelab.analysis.simulate import simulate, write_package

    opts = SimulationOptions(participants_per_group=25, stimuli_per_culture=5, likert_trials=0, slider_trials=0,
                             choice_trials=30, careless_fraction=0, attention_fail_fraction=0,
                             incomplete_fraction=0, ingroup_d=0.8, position_bias=0.4, seed=8,
                             sd_stimulus_group=0.0, sd_participant_culture=0.0)
    tables, meta = simulate(opts)
    pkg = load_package(write_package(tables, meta, tmp_path_factory.mktemp("choice") / "pkg"))
    return choice_table(pkg, "preference"), meta["truth"]


def test_mixed_logistic_finds_own_culture_choice_and_position_bias(choices):
    df, truth = choices
    test, table = ingroup_choice_glmm(df)
    assert test.name == "in_group_preference" and test.p < 0.001
    assert 0 < test.ci95[0] < test.estimate < test.ci95[1]
    # conditional log-odds ≈ the planted choice_scale·delta (attenuated a little by the other image's effect)
    assert test.estimate == pytest.approx(truth["choice_match_logodds"], abs=0.45)
    position = next(r for r in table["fixed"] if r["term"] == "own_right")
    # own image on the right vs left moves the log-odds by twice the planted right-hand bias (2 × 0.4)
    assert position["ci95"][0] < 0.8 < position["ci95"][1]
    assert test.effect_size["value"] == pytest.approx(np.exp(test.estimate))


def test_participant_level_rate_and_bradley_terry(choices):
    df, _ = choices
    t = ingroup_choice_participants(df, n_boot=200)
    # own-culture choices beyond the two cultures' appeal to the whole sample: a planted d of 0.8 shows
    assert t.estimate > 0.1 and t.p < 0.001 and t.ci95[0] > 0 and "adjusted for stimulus culture" in t.method
    worth = pd.DataFrame(bradley_terry(df, n_boot=50))
    owned = {"east_asian": "seigaiha", "west_african": "kente", "european": "meander"}
    for g, sub in worth.groupby("culture_group"):
        top = sub.loc[sub["log_worth"].idxmax()]
        assert top["stimulus_culture"] == owned[g]
        assert top["log_worth"] > 0 and top["ci95"][0] < top["log_worth"] < top["ci95"][1]
    desc = pd.DataFrame(choice_descriptives(df))
    assert desc["n"].sum() == 2 * len(df) and desc["mean"].between(0, 1).all()


def test_krippendorff_alpha_and_split_half():
    rng = np.random.default_rng(0)
    true = rng.normal(0, 1, 20)
    rows = [{"participant": f"p{p}", "stimulus": f"s{s}", "value": round(3 + true[s] + rng.normal(0, 0.3))}
            for p in range(30) for s in range(20)]
    d = pd.DataFrame(rows)
    alpha = krippendorff_alpha(d, "ordinal")
    assert alpha > 0.7
    lo, hi = krippendorff_alpha_ci(d, "ordinal", n_boot=100)
    assert lo < alpha < hi
    noise = d.assign(value=rng.integers(1, 8, len(d)))
    assert abs(krippendorff_alpha(noise, "ordinal")) < 0.1
    agree = split_half(d, n_splits=50)
    assert agree["spearman_brown"] > 0.95 and agree["n_splits"] == 50
    assert split_half(noise, n_splits=50)["spearman_brown"] < 0.6
    assert np.isnan(krippendorff_alpha(d[d["participant"] == "p0"], "ordinal"))  # one rater: undefined


def test_single_group_choice_data_is_not_a_crash(choices):
    df, _ = choices
    one = df[df["culture_group"] == "east_asian"]
    test, _ = ingroup_choice_glmm(one)  # one group: own culture and that culture's appeal are the same thing
    assert "cannot be told apart" in test.skipped and test.estimate is None
    assert "two or more culture groups" in ingroup_choice_participants(one, n_boot=20).skipped
    assert replace(SimulationOptions()).cultures == ["seigaiha", "kente", "meander"]


def test_alpha_is_missing_not_an_error_when_no_stimulus_has_two_raters():
    d = pd.DataFrame({"participant": ["p1", "p2", "p3"], "stimulus": ["s1", "s2", "s3"], "value": [1, 5, 3]})
    assert np.isnan(krippendorff_alpha(d, "interval"))
