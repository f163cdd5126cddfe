"""Participant-level layer and effect sizes, checked against pingouin on its shipped penguins data set."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pingouin as pg
import pytest
from scipy import stats

from culturelab.analysis.effects import cliffs_delta, epsilon_squared, eta2p_ci, rank_biserial_paired
from culturelab.analysis.nonparametric import ingroup_permutation, kruskal_groups
from culturelab.analysis.result import TestResult, apa_f, fmt_p, holm


@pytest.fixture(scope="module")
def penguins() -> pd.DataFrame:
    d = pg.read_dataset("penguins").dropna(subset=["body_mass_g"]).reset_index(drop=True)
    # one "participant" per penguin, so per-participant means are the raw values
    return pd.DataFrame({"participant": d.index.astype(str), "culture_group": d["species"],
                         "value": d["body_mass_g"], "stimulus": "s", "match": 0})


def test_kruskal_wallis_and_holm_posthocs_match_pingouin(penguins):
    test, posthoc = kruskal_groups(penguins, n_boot=200)
    ref = pg.kruskal(data=penguins, dv="value", between="culture_group")
    assert test.statistic == pytest.approx(ref["H"].iloc[0], rel=1e-10)
    assert test.p == pytest.approx(ref["p_unc"].iloc[0], rel=1e-8)
    assert test.df == 2
    assert test.effect_size["value"] == pytest.approx(ref["H"].iloc[0] / (len(penguins) - 1))
    lo, hi = test.effect_size["ci95"]
    assert lo < test.effect_size["value"] < hi
    pair = pg.pairwise_tests(data=penguins, dv="value", between="culture_group", parametric=False,
                             padjust="holm", effsize="CLES")
    for row in posthoc:
        ref_row = pair[(pair["A"] == row["group_a"]) & (pair["B"] == row["group_b"])].iloc[0]
        assert row["U"] == pytest.approx(ref_row["U_val"])
        assert row["p_holm"] == pytest.approx(ref_row["p_corr"], rel=1e-6)
        assert row["cliffs_delta"] == pytest.approx(2 * ref_row["CLES"] - 1, abs=1e-9)  # δ = 2·CLES − 1


def test_signed_rank_effect_size_matches_pingouin():
    rng = np.random.default_rng(4)
    d = rng.normal(0.3, 1, 40)
    assert rank_biserial_paired(d) == pytest.approx(pg.wilcoxon(d)["RBC"].iloc[0])


def _ratings(shift_unowned: float, ingroup: float, seed: int) -> pd.DataFrame:
    """Two groups, each owning one culture, and a third culture nobody owns, liked `shift_unowned` more."""
    rng = np.random.default_rng(seed)
    rows = []
    for g, own in (("a", "ca"), ("b", "cb")):
        for i in range(30):
            u = rng.normal(0, 1)
            for c in ("ca", "cb", "cu"):
                for s in range(4):
                    v = u + (shift_unowned if c == "cu" else 0) + (ingroup if c == own else 0) + rng.normal(0, 1)
                    rows.append({"participant": f"{g}{i}", "culture_group": g, "stimulus": f"{c}{s}",
                                 "stimulus_culture": c, "value": v, "match": int(c == own)})
    return pd.DataFrame(rows)


def test_participant_level_in_group_test_is_not_fooled_by_a_culture_everyone_dislikes():
    null = _ratings(shift_unowned=-1.5, ingroup=0.0, seed=1)
    own = null.groupby(["participant", "match"])["value"].mean().unstack()
    naive = stats.wilcoxon(own[1] - own[0])  # the old test: own − other, unadjusted
    assert naive.pvalue < 1e-6
    t = ingroup_permutation(null, n_boot=200)
    assert t.p > 0.05 and t.ci95[0] < 0 < t.ci95[1]
    assert abs(t.estimate) < 0.3


def test_participant_level_in_group_test_finds_a_planted_effect():
    t = ingroup_permutation(_ratings(shift_unowned=-1.5, ingroup=0.8, seed=2), n_boot=200)
    assert t.p < 0.001 and t.ci95[0] < 0.8 < t.ci95[1]
    assert t.name == "in_group_preference" and "adjusted for stimulus culture" in t.method


def test_effect_size_formulas():
    assert epsilon_squared(12.4, 101) == pytest.approx(12.4 / 100)
    assert cliffs_delta(np.array([3, 4]), np.array([1, 2])) == 1.0
    assert cliffs_delta(np.array([1, 2]), np.array([1, 2])) == 0.0
    lo, hi = eta2p_ci(10.0, 2, 100)
    assert 0 < lo < 10 * 2 / (10 * 2 + 100) < hi < 1
    assert eta2p_ci(0.1, 2, 100)[0] == 0.0


def test_apa_strings():
    assert fmt_p(0.0061) == "p = .006" and fmt_p(0.0004) == "p < .001"
    assert apa_f(2.1, 3, 996.04, 0.0981, 0.0063) == "F(3, 996.0) = 2.10, p = .098, ηp² = .01"
    t = TestResult(name="x", method="m", statistic=12.4, df=3, p=0.0061)
    assert t.to_dict()["p"] == 0.0061


def test_holm_adjusts_only_the_tests_that_ran():
    tests = [TestResult(name="a", method="m", p=0.01), TestResult.skip("b", "m", "one group"),
             TestResult(name="c", method="m", p=0.04)]
    holm(tests)
    assert tests[0].p_adjusted == pytest.approx(0.02) and tests[2].p_adjusted == pytest.approx(0.04)
    assert tests[1].p_adjusted is None and tests[1].to_dict()["skipped"] == "one group"
