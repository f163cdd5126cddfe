"""The crossed-random-effects LMM: agrees with statsmodels, recovers a planted effect, holds its size."""

from __future__ import annotations

import warnings
from dataclasses import replace

import mixedlm
import numpy as np
import pytest
import statsmodels.formula.api as smf

from culturelab.analysis.models import (
    BASE_RANDOM,
    fit_lmm,
    lmm_tests,
    match_test,
    satterthwaite_contrast,
    zscore_within,
)
from culturelab.analysis.power import rating_frame
from culturelab.analysis.simulate import SimulationOptions, simulate

CLEAN = SimulationOptions(careless_fraction=0.0, attention_fail_fraction=0.0, incomplete_fraction=0.0,
                          likert_trials=0, choice_trials=0, attention_checks=0)


def slider_data(**kw):
    opts = replace(CLEAN, **kw)
    tables, meta = simulate(opts)
    return rating_frame(tables, opts.match, "slider"), meta["truth"]


def test_mixedlm_estimates_match_statsmodels_variance_components():
    """Cross-check on a small data set: statsmodels MixedLM (crossed effects as variance components of one
    all-encompassing group, REML) must give the same fixed effects and variances."""
    d, _ = slider_data(participants_per_group=8, stimuli_per_culture=4, slider_trials=12, seed=5)
    lf = fit_lmm(d, "match + culture_group + stimulus_culture", terms=list(BASE_RANDOM))
    d = d.assign(one=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sm = smf.mixedlm("value ~ match + C(culture_group) + C(stimulus_culture)", d, groups="one",
                         vc_formula={"participant": "0 + C(participant)", "stimulus": "0 + C(stimulus)"},
                         re_formula="0").fit(reml=True, method="lbfgs")
    i = lf.names.index("match")
    assert lf.fit.beta[i] == pytest.approx(sm.fe_params["match"], abs=1e-3)
    assert np.sqrt(lf.fit.vcov()[i, i]) == pytest.approx(sm.bse_fe["match"], rel=1e-2)
    assert lf.fit.beta[0] == pytest.approx(sm.fe_params["Intercept"], abs=1e-3)
    vc = dict(zip(sm.model.exog_vc.names, sm.vcomp))
    ran = mixedlm.tidy(lf.fit, effects="ran_pars", ddf_method=None).set_index("group")["estimate"] ** 2
    assert ran["participant"] == pytest.approx(vc["participant"], rel=2e-2)
    assert ran["stimulus"] == pytest.approx(vc["stimulus"], rel=2e-2)
    assert ran["Residual"] == pytest.approx(sm.scale, rel=1e-3)


def test_one_df_contrast_reproduces_mixedlm_satterthwaite_and_f_matches_wald():
    d, _ = slider_data(participants_per_group=10, stimuli_per_culture=4, slider_trials=12, seed=2)
    lf = fit_lmm(d, "match + culture_group + stimulus_culture")
    i = lf.names.index("match")
    f, df1, df2, p = satterthwaite_contrast(lf, [i])
    assert df2 == pytest.approx(mixedlm.satterthwaite_df(lf.fit).df[i], rel=1e-9)
    t = lf.fit.beta[i] / np.sqrt(lf.fit.vcov()[i, i])
    assert f == pytest.approx(t ** 2)
    rows = [k for k, n in enumerate(lf.names) if n.startswith("culture_group")]
    f2, q, ddf, _ = satterthwaite_contrast(lf, rows)
    wald = mixedlm.inference.hypothesis.linear_hypothesis(lf.fit, np.eye(len(lf.names))[rows])
    assert q == 2 and f2 == pytest.approx(wald.statistic, rel=1e-6)
    # the group main effect is estimated between participants: its df is near the participant count
    assert 15 < ddf < 40


def test_planted_in_group_effect_is_recovered_with_ci_covering_truth():
    d, truth = slider_data(participants_per_group=40, stimuli_per_culture=8, slider_trials=24, ingroup_d=0.4, seed=7)
    tests, _ = lmm_tests(d, "slider points")
    ing = tests[0]
    assert ing.name == "in_group_preference"
    assert ing.ci95[0] <= truth["slider_match"] <= ing.ci95[1]
    assert ing.p < 0.001
    assert ing.effect_size["value"] == pytest.approx(0.4, abs=0.15)  # d on the latent scale


@pytest.mark.slow
def test_false_positive_rate_stays_near_nominal_without_an_effect():
    """100 small null data sets (about 0.2 s CPU each): rejections at alpha = .05 stay within 1..12, the
    central 99% of Binomial(100, .05); the seeds are fixed, so the test is deterministic."""
    rejections = 0
    for seed in range(100):
        d, _ = slider_data(participants_per_group=6, stimuli_per_culture=4, slider_trials=12, ingroup_d=0.0,
                           seed=1000 + seed)
        rejections += match_test(fit_lmm(d, "match + culture_group + stimulus_culture"), "points").p < 0.05
    assert 1 <= rejections <= 12, rejections


def test_single_culture_group_skips_group_tests_with_a_reason():
    opts = replace(CLEAN, groups=CLEAN.groups[:1], participants_per_group=10, slider_trials=12)
    tables, _ = simulate(opts)
    d = rating_frame(tables, CLEAN.match, "slider")
    tests, tables_out = lmm_tests(d, "points")
    by = {t.name: t for t in tests}
    assert set(by) == {"in_group_preference", "participant_culture", "stimulus_culture", "culture_interaction"}
    assert "two or more culture groups" in by["participant_culture"].skipped
    assert by["culture_interaction"].skipped
    assert by["in_group_preference"].skipped  # match = one stimulus culture: confounded
    assert by["stimulus_culture"].skipped is None and by["stimulus_culture"].p is not None
    assert tables_out["main"]["fixed"]


def test_zscores_drop_and_count_flat_participants():
    d, _ = slider_data(participants_per_group=5, stimuli_per_culture=3, slider_trials=9, seed=1)
    flat = d["participant"].iloc[0]
    d.loc[d["participant"] == flat, "value"] = 50.0
    z, n_flat = zscore_within(d)
    assert n_flat == 1 and flat not in set(z["participant"])
    assert z.groupby("participant")["value"].std().round(9).eq(1).all()


def test_match_confounded_with_main_effects_is_detected():
    from culturelab.analysis.models import match_problem

    d, _ = slider_data(participants_per_group=4, stimuli_per_culture=3, slider_trials=9, seed=3)
    assert match_problem(d) is None
    one_group = d[d["culture_group"] == "east_asian"]
    assert "confounded" in match_problem(one_group)
    assert "no response" in match_problem(d.assign(match=0))


def test_sleepstudy_matches_the_published_lme4_lmertest_numbers():
    """lme4's sleepstudy (shipped with mixedlm), `Reaction ~ Days + (1|Subject)`: lmerTest's summary prints
    (Intercept) 251.4051, SE 9.7467, df 22.81 and Days 10.4673, SE 0.8042, df 161."""
    from culturelab.analysis.models import LmmFit

    fit = mixedlm.lmer("Reaction ~ Days + (1|Subject)", mixedlm.load_sleepstudy())
    names = list(fit.matrices.fixed_names)
    lf = LmmFit(fit, names, names, [])
    assert fit.beta == pytest.approx([251.4051, 10.4673], abs=1e-4)
    assert np.sqrt(np.diag(fit.vcov())) == pytest.approx([9.7467, 0.8042], abs=1e-4)
    assert satterthwaite_contrast(lf, [0])[2] == pytest.approx(22.81, abs=0.01)
    assert satterthwaite_contrast(lf, [1])[2] == pytest.approx(161.0, abs=0.01)
