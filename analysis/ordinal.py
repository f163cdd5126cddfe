"""Ordinal sensitivity analysis for Likert questions: a cumulative link mixed model (proportional odds,
logit link, Laplace approximation as R's ordinal::clmm), adjusted for stimulus culture and culture group.

Random intercepts: (1|participant) + (1|stimulus:culture_group). The second lets a stimulus appeal
differently to each group, the variation that inflates the in-group test most (issue 9: 21 % type-I error at
SD 0.3 when it is left out); it also absorbs the stimulus's common appeal, counted once per group, which
makes the match test slightly conservative rather than liberal. The LMM's four-intercept structure is not
fitted here; the fit (culturelab.analysis.clmm_fit) is written for two crossed intercepts.

Above `max_responses` the model is fitted on a subsample of whole participants, drawn at random within each
culture group in proportion to the group's responses (seeded; stated in results.json and the report).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
from scipy import stats

from culturelab.analysis import clmm_fit
from culturelab.analysis.models import match_problem
from culturelab.analysis.result import TestResult, apa_z

log = logging.getLogger(__name__)
CLMM_FORMULA = "value ~ match + culture_group + stimulus_culture"
METHOD = ("CLMM, logit link (Laplace approximation as R ordinal::clmm; culturelab.analysis.clmm_fit, "
          "checked against interlace-lme clmm): " + CLMM_FORMULA +
          " + (1|participant) + (1|stimulus:culture_group); match log-odds, Wald z CI")


def subsample_participants(df: pd.DataFrame, max_responses: int, seed: int = 0) -> tuple[pd.DataFrame, str | None]:
    """Whole participants, stratified by culture group: each group contributes its share of `max_responses`
    (its share of the responses), its participants taken in random order while they fit. None: no subsample."""
    if len(df) <= max_responses:
        return df, None
    rng = np.random.default_rng(seed)
    sizes = df.groupby(["culture_group", "participant"], observed=True).size()
    keep: list = []
    for _, group in sizes.groupby(level="culture_group", observed=True):
        quota = max_responses * group.sum() / len(df)
        perm = rng.permutation(len(group))
        fits = np.cumsum(group.to_numpy()[perm]) <= quota
        keep.extend(group.index.get_level_values("participant")[perm][fits])
    sub = df[df["participant"].isin(set(keep))].reset_index(drop=True)
    note = (f"fitted on a subsample of {len(keep)} of {len(sizes)} participants ({len(sub)} of {len(df)} "
            f"responses, {len(sub) / len(df):.0%}): whole participants drawn at random within each culture group "
            f"in proportion to its responses (seed {seed}; limit {max_responses} responses)")
    return sub, note


def _design(sub: pd.DataFrame, terms: list[str]) -> tuple[np.ndarray, list[str]]:
    """Fixed-effect columns without an intercept: match, then treatment dummies (first sorted level the
    reference), as formulaic builds them for R-style formulas."""
    cols, names = [sub["match"].to_numpy(dtype=float)], ["match"]
    for term in terms:
        levels = sorted(sub[term].unique())
        for level in levels[1:]:
            cols.append((sub[term] == level).to_numpy(dtype=float))
            names.append(f"{term}[T.{level}]")
    return np.column_stack(cols), names


def clmm_match(df: pd.DataFrame, max_responses: int = 6000, seed: int = 0) -> TestResult:
    sub, note = subsample_participants(df, max_responses, seed)
    problem = match_problem(sub)
    if problem:
        return TestResult.skip("in_group_preference", METHOD, problem)
    terms = [t for t in ("culture_group", "stimulus_culture") if sub[t].nunique() > 1]
    x, _ = _design(sub, terms)
    y = pd.factorize(sub["value"], sort=True)[0]
    if y.max() < 1:
        return TestResult.skip("in_group_preference", METHOD, "every response is the same scale point")
    groups = (pd.factorize(sub["participant"])[0],
              pd.factorize(sub["stimulus"].astype(str) + "\x1f" + sub["culture_group"].astype(str))[0])
    started = time.perf_counter()
    fit = clmm_fit.fit(y, x, groups)
    seconds = time.perf_counter() - started
    log.info("CLMM on %d responses: %.1f s", len(sub), seconds)
    b, se = float(fit.beta[0]), float(fit.beta_se[0])
    z = b / se
    p = float(2 * stats.norm.sf(abs(z)))
    ci = (b - 1.959964 * se, b + 1.959964 * se)
    return TestResult(
        name="in_group_preference", method=METHOD, estimate=b, ci95=ci, statistic=z, p=p,
        effect_size={"name": "cumulative odds ratio", "value": float(np.exp(b)),
                     "ci95": [float(np.exp(ci[0])), float(np.exp(ci[1]))]},
        apa=apa_z(z, p, b, ci, "OR", float(np.exp(b))),
        extra={"n_responses": len(sub), "n_participants": int(sub["participant"].nunique()), "subsample": note,
               "seconds": round(seconds, 2), "converged": fit.converged,
               "sd_participant": float(fit.theta[0]), "sd_stimulus_group": float(fit.theta[1])},
    )
