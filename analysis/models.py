"""Linear mixed models with crossed random intercepts for participants and stimuli (mixedlm's `lmer`).

The Contract 3 model (DESIGN.md):

    value ~ match + culture_group + stimulus_culture + (1|participant) + (1|stimulus)

`match` is the one-df in-group contrast: 1 where the study's match table gives the stimulus's culture to
the participant's group. Its t test uses Satterthwaite df (mixedlm's `satterthwaite_df`, as lmerTest).
Main effects of culture group and stimulus culture are joint Wald F tests in that model; the culture
interaction is the joint F test of the culture_group:stimulus_culture terms in the full-factorial model
(`match` lies in the span of those cells, so the interaction includes the in-group diagonal). Multi-df F
tests use lmerTest's Satterthwaite method for a contrast matrix (Kuznetsova et al., 2017, "contestMD"),
built on mixedlm's vcov derivatives.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import mixedlm
import numpy as np
import pandas as pd
from mixedlm.inference.ddf import _vcov_derivatives  # the vcov gradients mixedlm's own Satterthwaite uses
from scipy import stats

from culturelab.analysis.effects import eta2p_ci, eta2p_from_f
from culturelab.analysis.result import TestResult, apa_f, apa_t

RANDOM = "(1|participant) + (1|stimulus)"
LMM_METHOD = "LMM (REML, mixedlm lmer), crossed random intercepts participant + stimulus"


@dataclass
class LmmFit:
    fit: object  # mixedlm LmerResult
    names: list[str]  # fixed-effect names, mixedlm's (e.g. "culture_group.1")
    labels: list[str]  # the same with factor levels spelled out (e.g. "culture_group[kente]")
    notes: list[str]


def _categorical(df: pd.DataFrame) -> pd.DataFrame:
    """Factor columns with a fixed level order, so coefficient `.k` is level k (first level: reference)."""
    df = df.copy()
    for col in ("culture_group", "stimulus_culture"):
        df[col] = pd.Categorical(df[col], categories=sorted(df[col].unique()))
    return df


def _label(name: str, df: pd.DataFrame) -> str:
    parts = []
    for part in name.split(":"):
        factor, _, k = part.rpartition(".")
        if factor in ("culture_group", "stimulus_culture") and k.isdigit():
            parts.append(f"{factor}[{df[factor].cat.categories[int(k)]}]")
        else:
            parts.append(part)
    return ":".join(parts)


def fit_lmm(df: pd.DataFrame, fixed: str, response: str = "value") -> LmmFit:
    """Fit `response ~ fixed + (1|participant) + (1|stimulus)` by REML; notes record singular fits."""
    df = _categorical(df)
    notes = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # rank problems become warnings (kept in the notes), not prints
        fit = mixedlm.lmer(f"{response} ~ {fixed} + {RANDOM}", df, REML=True,
                           control=mixedlm.lmerControl(check_rankX="warning+drop.cols"))
    for w in caught:
        msg = str(w.message).splitlines()[0]
        if msg not in notes:
            notes.append(msg)
    if not fit.converged:
        notes.append("the optimizer did not report convergence")
    names = list(fit.matrices.fixed_names)
    return LmmFit(fit, names, [_label(n, df) for n in names], notes)


def satterthwaite_contrast(lf: LmmFit, rows: list[int]) -> tuple[float, float, float, float]:
    """Joint F test that the coefficients `rows` are zero: (F, num df, den df, p).

    lmerTest's contestMD: eigen-decompose L V Lᵀ; each eigen-direction m gets a Satterthwaite df ν_m from
    the gradient of its variance in the covariance parameters; E = Σ ν_m/(ν_m − 2), den df = 2E/(E − q).
    ν_m uses mixedlm's own formula (2 / (relative variance uncertainty + 2/residual df)), so a single
    coefficient reproduces mixedlm's `satterthwaite_df` exactly.
    """
    fit = lf.fit
    beta, vcov = np.asarray(fit.beta), np.asarray(fit.vcov())
    L = np.zeros((len(rows), len(beta)))
    L[np.arange(len(rows)), rows] = 1.0
    lvl = L @ vcov @ L.T
    q = len(rows)
    est = L @ beta
    f_stat = float(est @ np.linalg.solve(lvl, est) / q)
    grads, theta_cov = _vcov_derivatives(fit)
    eigval, eigvec = np.linalg.eigh(lvl)
    resid_df = fit.matrices.n_obs - len(beta)
    nus = []
    for m in range(q):
        lm = eigvec[:, m] @ L
        g = np.array([lm @ gk @ lm for gk in grads]) / eigval[m]
        nus.append(2.0 / (max(float(g @ theta_cov @ g), 0.0) + 2.0 / resid_df))
    nus = np.clip(np.array(nus), 1.0, resid_df)
    if q == 1:
        ddf = float(nus[0])
    else:
        e = float(np.sum(nus[nus > 2] / (nus[nus > 2] - 2)))
        ddf = 2 * e / (e - q) if e > q else float(np.min(nus))
    return f_stat, float(q), ddf, float(stats.f.sf(f_stat, q, ddf))


def _sd_total(fit) -> float:
    """sqrt(participant variance + stimulus variance + residual variance) — the d denominator of
    Westfall, Kenny & Judd (2014) for crossed designs."""
    rp = mixedlm.tidy(fit, effects="ran_pars", ddf_method=None)
    return float(np.sqrt(np.sum(rp["estimate"].to_numpy() ** 2)))


def match_test(lf: LmmFit, units: str) -> TestResult:
    """The in-group preference: the `match` coefficient's Satterthwaite t test, with d for crossed designs."""
    fit = lf.fit
    i = lf.names.index("match")
    b = float(fit.beta[i])
    se = float(np.sqrt(fit.vcov()[i, i]))
    df = float(mixedlm.satterthwaite_df(fit).df[i])
    t = b / se
    p = float(2 * stats.t.sf(abs(t), df))
    half = stats.t.ppf(0.975, df) * se
    ci = (b - half, b + half)
    sd = _sd_total(fit)
    d = b / sd
    return TestResult(
        name="in_group_preference",
        method=f"{LMM_METHOD}; match coefficient in {units}; Satterthwaite df (mixedlm); t-based CI",
        estimate=b, ci95=ci, statistic=t, df=df, p=p,
        effect_size={"name": "d (b / total SD of participant, stimulus and residual; Westfall et al., 2014)",
                     "value": d, "ci95": [ci[0] / sd, ci[1] / sd]},
        apa=apa_t(t, df, p, b, ci, "d", d),
    )


def f_test(lf: LmmFit, name: str, rows: list[int], what: str) -> TestResult:
    f, df1, df2, p = satterthwaite_contrast(lf, rows)
    es = eta2p_from_f(f, df1, df2)
    return TestResult(
        name=name, method=f"{LMM_METHOD}; joint Wald F test of {what}; Satterthwaite den. df (lmerTest method)",
        statistic=f, df=df2, df_num=df1, p=p,
        effect_size={"name": "partial eta squared from F (CI: noncentral F inversion)", "value": es,
                     "ci95": list(eta2p_ci(f, df1, df2))},
        apa=apa_f(f, df1, df2, p, es),
    )


def match_problem(df: pd.DataFrame) -> str | None:
    """Why `match` cannot be estimated next to the culture main effects, or None when it can.

    It cannot when it is constant, or when it is a combination of the group and culture dummies (one culture
    group; or every group owning the same cultures), which least squares reveals as a zero residual."""
    if df["match"].nunique() < 2:
        return "no response pairs a group with a culture the match table gives it, or all do"
    dummies = pd.get_dummies(df[["culture_group", "stimulus_culture"]].astype(str), drop_first=True, dtype=float)
    x = np.column_stack([np.ones(len(df)), dummies.to_numpy()])
    y = df["match"].to_numpy(dtype=float)
    resid = y - x @ np.linalg.lstsq(x, y, rcond=None)[0]
    if np.abs(resid).max() < 1e-8:
        return ("match is confounded with the culture main effects in this design (e.g. a single culture group); "
                "it cannot be estimated")
    return None


def lmm_tests(df: pd.DataFrame, units: str, response: str = "value") -> tuple[list[TestResult], dict]:
    """The four Contract 3 tests for a rating question, and the fixed-effect tables for the report."""
    n_groups, n_cultures = df["culture_group"].nunique(), df["stimulus_culture"].nunique()
    skip_groups = "needs two or more culture groups with data" if n_groups < 2 else None
    skip_cultures = "needs two or more stimulus cultures" if n_cultures < 2 else None
    terms = [t for t, skip in (("culture_group", skip_groups), ("stimulus_culture", skip_cultures)) if not skip]
    problem = match_problem(df)
    has_match = problem is None
    fixed = " + ".join((["match"] if has_match else []) + terms) or "1"
    tables: dict = {}
    tests: list[TestResult] = []
    main = fit_lmm(df, fixed, response)
    tables["main"] = coefficient_table(main, f"{response} ~ {fixed} + {RANDOM}")
    if problem:
        tests.append(TestResult.skip("in_group_preference", LMM_METHOD, problem))
    else:
        tests.append(match_test(main, units))
    for name, term, skip in (("participant_culture", "culture_group", skip_groups),
                             ("stimulus_culture", "stimulus_culture", skip_cultures)):
        rows = [i for i, n in enumerate(main.names) if n.split(".")[0] == term and ":" not in n]
        if skip or not rows:
            tests.append(TestResult.skip(name, LMM_METHOD, skip or f"{term} is not estimable"))
        else:
            tests.append(f_test(main, name, rows, f"{term} (adjusted for match)"))
    if skip_groups or skip_cultures:
        tests.append(TestResult.skip("culture_interaction", LMM_METHOD, skip_groups or skip_cultures))
    else:
        full = fit_lmm(df, "culture_group * stimulus_culture", response)
        tables["interaction"] = coefficient_table(full, f"{response} ~ culture_group * stimulus_culture + {RANDOM}")
        rows = [i for i, n in enumerate(full.names) if ":" in n]
        if rows:
            tests.append(f_test(full, "culture_interaction", rows, "all culture_group:stimulus_culture terms"))
        else:
            tests.append(TestResult.skip("culture_interaction", LMM_METHOD, "no interaction cell is estimable"))
    return tests, tables


def coefficient_table(lf: LmmFit, formula: str) -> dict:
    """Fixed effects with Satterthwaite df and variance components, for the report's model tables."""
    fit = lf.fit
    se = np.sqrt(np.diag(fit.vcov()))
    dfs = mixedlm.satterthwaite_df(fit).df
    t = np.asarray(fit.beta) / se
    half = stats.t.ppf(0.975, dfs) * se
    rows = [{"term": lab, "estimate": float(b), "se": float(s), "df": float(d), "t": float(tt),
             "p": float(2 * stats.t.sf(abs(tt), d)), "ci95": [float(b - h), float(b + h)]}
            for lab, b, s, d, tt, h in zip(lf.labels, fit.beta, se, dfs, t, half)]
    rp = mixedlm.tidy(fit, effects="ran_pars", ddf_method=None)
    variance = {str(g): float(e) ** 2 for g, e in zip(rp["group"], rp["estimate"])}
    return {"formula": formula, "fixed": rows, "variance_components": variance,
            "n_obs": int(fit.matrices.n_obs), "notes": lf.notes}


def zscore_within(df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Ratings z-scored within participant (removes response styles); participants with no variance
    (straight-liners) have no z-scores and are counted, not silently lost."""
    g = df.groupby("participant")["value"]
    sd = g.transform("std")
    out = df.assign(value=(df["value"] - g.transform("mean")) / sd)
    keep = sd > 0
    return out[keep].reset_index(drop=True), int(df.loc[~keep, "participant"].nunique())
