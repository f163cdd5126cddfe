"""Linear mixed models with crossed random effects for participants and stimuli (mixedlm's `lmer`).

The Contract 3 model (docs/contracts.md) is the minimum:

    value ~ match + culture_group + stimulus_culture + (1|participant) + (1|stimulus)

With only those two intercepts, `match` is tested against residual-level df, and its type-I error rises far
above nominal when a stimulus appeals more to one group, or a person likes one culture more than the others
do (issue 9: 21 % and 11 % at SD 0.3). Both are ordinary in cross-cultural ratings, so the model also gets
the crossed-combination intercepts the design supports ("keep it maximal", Barr et al. 2013):

    + (1|stimulus:culture_group)          a stimulus's appeal to one participant group
    + (1|participant:stimulus_culture)    a participant's taste for one stimulus culture

The structure is chosen by one pre-registrable rule (`choose_random`), as Bates et al. (2015) and
Matuschek et al. (2017) describe for simplifying a maximal model:

1. Start from the four intercepts; a combination term is left out when the design cannot separate it from
   the others (every level seen once: it is the residual; no participant rated two cultures, or no stimulus
   was rated by two groups: it is the plain intercept).
2. Fit by REML. If the fit is singular (a component's SD estimated at zero, below 1e-4 of the residual SD,
   as lme4's isSingular), drop the combination terms estimated at zero and refit; if the fit fails, drop
   `participant:stimulus_culture`, then `stimulus:culture_group`, and refit.
3. The two Contract 3 intercepts are always kept; a singular fit of them is reported, not simplified.

Dropping a component estimated at zero leaves the fixed effects unchanged; it only keeps the Satterthwaite
computation off the boundary. `match` is the one-df in-group contrast: 1 where the study's match table gives
the stimulus's culture to the participant's group. Its t test uses Satterthwaite df (mixedlm's
`satterthwaite_df`, as lmerTest). Main effects of culture group and stimulus culture are joint Wald F tests in
that model; the culture interaction is the joint F test of the culture_group:stimulus_culture terms in the
full-factorial model (`match` lies in the span of those cells, so the interaction includes the in-group
diagonal). Multi-df F tests use lmerTest's Satterthwaite method for a contrast matrix (Kuznetsova et al.,
2017, "contestMD"), built on mixedlm's vcov derivatives.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import mixedlm
import numpy as np
import pandas as pd
from mixedlm.inference.ddf import _vcov_derivatives  # the vcov gradients mixedlm's own Satterthwaite uses
from scipy import stats

from culturelab.analysis.effects import eta2p_ci, eta2p_from_f
from culturelab.analysis.result import TestResult, apa_f, apa_t

BASE_RANDOM = ("participant", "stimulus")  # Contract 3's minimum: always fitted
# the crossed combinations, in the order the rule drops them when a fit fails
EXTRA_RANDOM = ("participant:stimulus_culture", "stimulus:culture_group")
SINGULAR_TOL = 1e-4  # a component's SD relative to the residual SD below this counts as zero (lme4's tolerance)
LMM_METHOD = "LMM (REML, mixedlm lmer)"


def random_formula(terms: list[str] | tuple[str, ...]) -> str:
    return " + ".join(f"(1|{t})" for t in terms)


def method_name(terms: list[str] | tuple[str, ...]) -> str:
    """What `method` says was fitted, e.g. 'LMM (REML, mixedlm lmer), random intercepts (1|participant) + …'."""
    return f"{LMM_METHOD}, random intercepts {random_formula(terms)}"


@dataclass
class LmmFit:
    fit: object  # mixedlm LmerResult
    names: list[str]  # fixed-effect names, mixedlm's (e.g. "culture_group.1")
    labels: list[str]  # the same with factor levels spelled out (e.g. "culture_group[kente]")
    notes: list[str]
    random: list[str] = field(default_factory=lambda: list(BASE_RANDOM))  # the intercepts actually fitted
    dropped: list[str] = field(default_factory=list)  # what the simplification rule removed, and why

    @property
    def method(self) -> str:
        return method_name(self.random)

    @property
    def singular(self) -> bool:
        return any("singular" in n for n in self.notes)


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


def supported_terms(df: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Step 1 of the rule: (random intercepts the design can separate, reasons for those it cannot)."""
    terms, why = list(BASE_RANDOM), []
    n = len(df)
    for term in EXTRA_RANDOM:
        outer, inner = term.split(":")
        levels = df.groupby([outer, inner], observed=True).ngroups
        if levels >= n:
            why.append(f"(1|{term}) left out: every {outer} × {inner} combination occurs once (it is the residual)")
        elif levels <= df[outer].nunique():
            why.append(f"(1|{term}) left out: no {outer} occurs with two {inner} levels (it is (1|{outer}))")
        else:
            terms.append(term)
    return terms, why


def _with_combinations(df: pd.DataFrame, terms: list[str]) -> pd.DataFrame:
    """Explicit grouping columns for the combination terms (mixedlm groups by their string values)."""
    for term in terms:
        if ":" in term:
            a, b = term.split(":")
            df[term.replace(":", "__")] = df[a].astype(str) + "\x1f" + df[b].astype(str)
    return df


# Exact-gradient L-BFGS-B first: on 55k responses it needs ~15 deviance evaluations where mixedlm's default
# ("auto": the same L-BFGS-B held to ftol 1e-15, then COBYQA from the start) needs ~150 (2.5 s instead of 9 s
# CPU, same estimates to 1e-4). A small positive variance, where the gradient nearly vanishes by symmetry, or a
# fit that did not converge is refitted with the default optimizer from where the fast one stopped. A variance
# at the boundary (θ ≤ 1e-4) is not: mixedlm's restart_edge has already probed it with inward steps of 1e-3,
# 1e-2 and 1e-1 and restarted from any that lowered the deviance (the z-score model's participant intercept,
# zero by construction, spent 3 s in that refit for the same estimates).
FAST = {"optimizer": "L-BFGS-B", "use_analytic_gradient": True, "ftol": 1e-12, "gtol": 1e-7}
NEAR_ZERO_THETA = 1e-3
EDGE_PROBED_THETA = 1e-4  # mixedlm's run_optimizer probes |θ| ≤ 1e-4 · max(1, |start|)


def _lmer(df: pd.DataFrame, formula: str, start: np.ndarray | None) -> tuple[object, list[str]]:
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # rank problems become warnings (kept in the notes), not prints
        kwargs = {"start": start} if start is not None else {}
        fit = mixedlm.lmer(formula, df, REML=True,
                           control=mixedlm.lmerControl(check_rankX="warning+drop.cols", **FAST), **kwargs)
        theta = np.abs(np.asarray(fit.theta))
        if not fit.converged or np.any((theta > EDGE_PROBED_THETA) & (theta < NEAR_ZERO_THETA)):
            caught.clear()
            fit = mixedlm.lmer(formula, df, REML=True, control=mixedlm.lmerControl(check_rankX="warning+drop.cols"),
                               start=np.maximum(np.abs(np.asarray(fit.theta)), 0.1))
    for w in caught:
        msg = str(w.message).splitlines()[0]
        if msg not in notes and "singular" not in msg.lower():  # singularity is judged below, once
            notes.append(msg)
    if not fit.converged:
        notes.append("the optimizer did not report convergence")
    return fit, notes


def component_sds(fit) -> dict[str, float]:
    """Random-effect SDs by grouping term (mixedlm's names: `a:b` combinations carry `a__b`), and Residual."""
    rp = mixedlm.tidy(fit, effects="ran_pars", ddf_method=None)
    return {str(g).replace("__", ":"): float(e) for g, e in zip(rp["group"], rp["estimate"])}


def fit_lmm(df: pd.DataFrame, fixed: str, response: str = "value", terms: list[str] | None = None,
            start: np.ndarray | None = None) -> LmmFit:
    """Fit `response ~ fixed + random` by REML with the random intercepts the rule of this module keeps.

    `terms` is where the rule starts (default: what the design supports); `start` a theta to start the
    optimizer from (a previous fit of the same structure), which saves most of a refit's time."""
    df = _categorical(df)
    dropped: list[str] = []
    if terms is None:
        terms, dropped = supported_terms(df)
    terms = list(terms)
    df = _with_combinations(df, terms)
    while True:
        formula = f"{response} ~ {fixed} + {random_formula([t.replace(':', '__') for t in terms])}"
        extras = [t for t in terms if t not in BASE_RANDOM]
        try:
            fit, notes = _lmer(df, formula, start)
        except (ValueError, RuntimeError, ArithmeticError, np.linalg.LinAlgError) as exc:
            if not extras:
                raise
            drop = next(t for t in EXTRA_RANDOM if t in extras)
            dropped.append(f"(1|{drop}) dropped: the fit failed ({str(exc).splitlines()[0]})")
            terms.remove(drop)
            start = None
            continue
        sds = component_sds(fit)
        sigma = max(sds.get("Residual", 1.0), 1e-12)
        zero = [t for t in terms if sds.get(t, 0.0) / sigma < SINGULAR_TOL]
        zero_extras = [t for t in zero if t in extras]
        if zero_extras:
            for t in zero_extras:
                dropped.append(f"(1|{t}) dropped: its variance was estimated at zero (singular fit)")
                terms.remove(t)
            start = None
            continue
        if zero:
            notes.append("singular fit: the variance of " + " and ".join(f"(1|{t})" for t in zero) +
                         " was estimated at zero; the model is equivalent to one without it, and the "
                         "Contract 3 minimum keeps it")
        names = list(fit.matrices.fixed_names)
        return LmmFit(fit, names, [_label(n, df) for n in names], notes, terms, dropped)


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


def _d_with_ci(lf: LmmFit, b: float, se: float, df: float) -> tuple[float, tuple[float, float], float]:
    """d = b / SD_total (Westfall, Kenny & Judd, 2014: the SD over all variance components of the crossed
    design) and its 95% CI by the delta method on log d, so the CI carries the uncertainty of SD_total as
    well as that of b: var(log SD_total) comes from the REML curvature of the relative covariance parameters
    (the covariance mixedlm's Satterthwaite df use) plus 1/(2·residual df) for the residual SD."""
    fit = lf.fit
    sds = component_sds(fit)
    total = float(np.sqrt(sum(v ** 2 for v in sds.values())))
    theta = np.asarray(fit.theta, dtype=float)
    _, theta_cov = _vcov_derivatives(fit)
    grad = theta / (1.0 + float(theta @ theta))  # d log SD_total / d theta (SD_total = sigma·sqrt(1 + Σθ²))
    resid_df = max(fit.matrices.n_obs - len(fit.beta), 1)
    var_log_sd = max(float(grad @ theta_cov @ grad), 0.0) + 1.0 / (2.0 * resid_df)
    d = b / total
    se_d = float(np.sqrt(se ** 2 / total ** 2 + d ** 2 * var_log_sd))
    half = float(stats.t.ppf(0.975, df)) * se_d
    return d, (d - half, d + half), total


def match_test(lf: LmmFit, units: str) -> TestResult:
    """The in-group preference: the `match` coefficient's Satterthwaite t test, with d for crossed designs."""
    fit = lf.fit
    i = lf.names.index("match")
    b = float(fit.beta[i])
    se = float(np.sqrt(fit.vcov()[i, i]))
    df = float(mixedlm.satterthwaite_df(fit).df[i])
    t = b / se
    p = float(2 * stats.t.sf(abs(t), df))
    half = float(stats.t.ppf(0.975, df)) * se
    ci = (b - half, b + half)
    d, d_ci, total = _d_with_ci(lf, b, se, df)
    return TestResult(
        name="in_group_preference",
        method=f"{lf.method}; match coefficient in {units}; Satterthwaite df (mixedlm); t-based CI",
        estimate=b, ci95=ci, statistic=t, df=df, p=p,
        effect_size={"name": "d (b / total SD over all variance components; Westfall et al., 2014; CI by the delta "
                             "method, including the uncertainty of the SD)",
                     "value": d, "ci95": list(d_ci)},
        apa=apa_t(t, df, p, b, ci, "d", d),
        extra={"random_effects": [f"(1|{t})" for t in lf.random], "simplification": lf.dropped,
               "singular": lf.singular, "sd_total": total},
    )


def f_test(lf: LmmFit, name: str, rows: list[int], what: str) -> TestResult:
    f, df1, df2, p = satterthwaite_contrast(lf, rows)
    es = eta2p_from_f(f, df1, df2)
    return TestResult(
        name=name, method=f"{lf.method}; joint Wald F test of {what}; Satterthwaite den. df (lmerTest method)",
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


def main_fixed(df: pd.DataFrame) -> tuple[str, str | None, str | None, str | None]:
    """The main model's fixed part for these data: (formula, why match cannot be estimated, why the group
    terms, why the culture terms are left out); `match` and each factor appear only where estimable."""
    skip_groups = "needs two or more culture groups with data" if df["culture_group"].nunique() < 2 else None
    skip_cultures = "needs two or more stimulus cultures" if df["stimulus_culture"].nunique() < 2 else None
    terms = [t for t, skip in (("culture_group", skip_groups), ("stimulus_culture", skip_cultures)) if not skip]
    problem = match_problem(df)
    fixed = " + ".join((["match"] if problem is None else []) + terms) or "1"
    return fixed, problem, skip_groups, skip_cultures


def lmm_tests(df: pd.DataFrame, units: str, response: str = "value") -> tuple[list[TestResult], dict]:
    """The four Contract 3 tests for a rating question, and the fixed-effect tables for the report."""
    tests, tables, _ = lmm_tests_with_fit(df, units, response)
    return tests, tables


def lmm_tests_with_fit(df: pd.DataFrame, units: str, response: str = "value", like: LmmFit | None = None,
                       interaction: bool = True, tables: bool = True) -> tuple[list[TestResult], dict, LmmFit]:
    """`lmm_tests`, also returning the main fit. `like`: a fit of the same model on overlapping data (e.g.
    before exclusions) whose random structure and estimates start this one, which saves most of the
    optimizer's run; `interaction=False` leaves out the full-factorial refit (culture_interaction skipped);
    `tables=False` leaves out the coefficient tables (the tests need only their own coefficients' df)."""
    fixed, problem, skip_groups, skip_cultures = main_fixed(df)
    want_tables, tables = tables, {}
    tests: list[TestResult] = []
    if like is not None:
        main = fit_lmm(df, fixed, response, terms=like.random, start=np.asarray(like.fit.theta))
    else:
        main = fit_lmm(df, fixed, response)
    if want_tables:
        tables["main"] = coefficient_table(main, f"{response} ~ {fixed} + {random_formula(main.random)}")
    if problem:
        tests.append(TestResult.skip("in_group_preference", main.method, problem))
    else:
        tests.append(match_test(main, units))
    for name, term, skip in (("participant_culture", "culture_group", skip_groups),
                             ("stimulus_culture", "stimulus_culture", skip_cultures)):
        rows = [i for i, n in enumerate(main.names) if n.split(".")[0] == term and ":" not in n]
        if skip or not rows:
            tests.append(TestResult.skip(name, main.method, skip or f"{term} is not estimable"))
        else:
            tests.append(f_test(main, name, rows, f"{term} (adjusted for match)"))
    if skip_groups or skip_cultures or not interaction:
        why = skip_groups or skip_cultures or "not refitted here (see the same test on the analysed participants)"
        tests.append(TestResult.skip("culture_interaction", main.method, why))
    else:
        # the main model's structure and estimates start this fit: the same rule, most of the optimizer run saved
        full = fit_lmm(df, "culture_group * stimulus_culture", response, terms=main.random,
                       start=np.asarray(main.fit.theta))
        if want_tables:
            tables["interaction"] = coefficient_table(
                full, f"{response} ~ culture_group * stimulus_culture + {random_formula(full.random)}")
        rows = [i for i, n in enumerate(full.names) if ":" in n]
        if rows:
            tests.append(f_test(full, "culture_interaction", rows, "all culture_group:stimulus_culture terms"))
        else:
            tests.append(TestResult.skip("culture_interaction", full.method, "no interaction cell is estimable"))
    return tests, tables, main


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
    variance = {str(g).replace("__", ":"): float(e) ** 2 for g, e in zip(rp["group"], rp["estimate"])}
    return {"formula": formula, "fixed": rows, "variance_components": variance,
            "n_obs": int(fit.matrices.n_obs), "notes": lf.notes, "random_effects": [f"(1|{t})" for t in lf.random],
            "simplification": lf.dropped, "singular": lf.singular}


def zscore_within(df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Ratings z-scored within participant (removes response styles); participants with no variance
    (straight-liners) have no z-scores and are counted, not silently lost."""
    g = df.groupby("participant")["value"]
    sd = g.transform("std")
    out = df.assign(value=(df["value"] - g.transform("mean")) / sd)
    keep = sd > 0
    return out[keep].reset_index(drop=True), int(df.loc[~keep, "participant"].nunique())
