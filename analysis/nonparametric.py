"""Participant-level non-parametric layer: one number per participant, so no model assumptions.

Kruskal–Wallis across culture groups on per-participant mean ratings (ε², bootstrap CI), pairwise
Mann–Whitney post-hocs with Holm correction (Cliff's δ, bootstrap CI), and a permutation test of each
participant's in-group difference adjusted for stimulus culture (culturelab.analysis.permutation; it replaces
a Wilcoxon test of the unadjusted own − other difference, which a culture everyone dislikes fooled).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from culturelab.analysis.effects import bootstrap_ci, cliffs_delta, epsilon_squared
from culturelab.analysis.permutation import label_permutation_test, rating_scores
from culturelab.analysis.result import TestResult, fmt_bounded, fmt_p


def participant_means(df: pd.DataFrame) -> pd.DataFrame:
    return df.groupby(["participant", "culture_group"], observed=True)["value"].mean().reset_index()


def kruskal_groups(df: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> tuple[TestResult, list[dict]]:
    """Kruskal–Wallis H on per-participant means across culture groups, then Holm-corrected post-hocs."""
    means = participant_means(df)
    groups = sorted(means["culture_group"].unique())
    samples = [means.loc[means["culture_group"] == g, "value"].to_numpy() for g in groups]
    method = "Kruskal–Wallis H on per-participant mean ratings (scipy.stats.kruskal)"
    if len(groups) < 2:
        return TestResult.skip("participant_culture", method, "needs two or more culture groups with data"), []
    if all(np.ptp(np.concatenate(samples)) == 0 for _ in [0]):
        return TestResult.skip("participant_culture", method, "all participant means are equal"), []
    h, p = stats.kruskal(*samples)
    n = sum(len(s) for s in samples)
    eps = epsilon_squared(h, n)

    def boot_eps(*s: np.ndarray) -> np.ndarray:  # one resample per row
        pooled = np.concatenate(s, axis=1)
        varies = np.ptp(pooled, axis=1) > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            h = stats.kruskal(*s, axis=1).statistic
        return np.where(varies, epsilon_squared(h, n), np.nan)

    ci = bootstrap_ci(samples, boot_eps, n_boot, seed)
    df_h = len(groups) - 1
    test = TestResult(
        name="participant_culture", method=method, statistic=float(h), df=float(df_h), p=float(p),
        effect_size={"name": "epsilon squared (CI: participant bootstrap, percentile)", "value": eps,
                     "ci95": list(ci)},
        apa=f"H({df_h}) = {h:.2f}, {fmt_p(p)}, ε² = {fmt_bounded(eps)}",
    )
    return test, mann_whitney_posthoc(dict(zip(groups, samples)), n_boot, seed)


def mann_whitney_posthoc(samples: dict[str, np.ndarray], n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """All pairs, two-sided Mann–Whitney U, p adjusted with multipletests(method='holm'), Cliff's δ."""
    rows = []
    for a, b in combinations(samples, 2):
        x, y = samples[a], samples[b]
        u, p = stats.mannwhitneyu(x, y, alternative="two-sided")
        delta = cliffs_delta(x, y)
        ci = bootstrap_ci([x, y], cliffs_delta, n_boot, seed)
        rows.append({"group_a": a, "group_b": b, "n_a": len(x), "n_b": len(y), "U": float(u), "p": float(p),
                     "cliffs_delta": delta, "cliffs_delta_ci95": list(ci)})
    if rows:
        adjusted = multipletests([r["p"] for r in rows], method="holm")[1]
        for r, pa in zip(rows, adjusted):
            r["p_holm"] = float(pa)
            r["apa"] = (f"{r['group_a']} vs {r['group_b']}: U = {r['U']:.1f}, {fmt_p(r['p_holm'])} (Holm), "
                        f"δ = {fmt_bounded(r['cliffs_delta'])}")
    return rows


def owned_cultures(df: pd.DataFrame, cultures: list[str]) -> tuple[list[str], np.ndarray]:
    """(groups, groups × cultures bool): which cultures each group owns, read off the `match` column."""
    groups = sorted(df["culture_group"].unique())
    own = df[df["match"] == 1].groupby("culture_group")["stimulus_culture"].agg(set)
    return groups, np.array([[c in own.get(g, set()) for c in cultures] for g in groups])


def ingroup_permutation(df: pd.DataFrame, n_perm: int = 2000, n_boot: int = 1000, seed: int = 0) -> TestResult:
    """Per participant: own-minus-other culture difference less the whole sample's (adjusted for stimulus
    culture); permutation test of the culture-group labels (culturelab.analysis.permutation)."""
    method = ("permutation test of culture-group labels (2,000 permutations) on per-participant in-group "
              "contrasts adjusted for stimulus culture: own − other culture mean rating, less the same contrast "
              "in the whole sample, scaled to the question's units (an additive in-group effect δ gives δ); "
              "CI: participant bootstrap within group; generalises over participants, not stimuli")
    if df["culture_group"].nunique() < 2:
        return TestResult.skip("in_group_preference", method, "needs two or more culture groups with data")
    cells = df.groupby(["participant", "stimulus_culture"])["value"].mean().unstack()
    cultures = list(cells.columns)
    groups, owns = owned_cultures(df, cultures)
    if (owns == owns[0]).all():
        return TestResult.skip("in_group_preference", method, "the match table gives every group the same cultures")
    group_of = df.groupby("participant")["culture_group"].first().reindex(cells.index)
    labels = group_of.map({g: i for i, g in enumerate(groups)}).to_numpy()
    values = cells.to_numpy(dtype=float)
    res = label_permutation_test(rating_scores(values, owns), labels, n_perm, n_boot, seed)
    if res.n < 2:
        return TestResult.skip("in_group_preference", method,
                               "fewer than two participants rated both own and other cultures")
    # The sample reference contains the other groups' in-group effects, so the mean score is k·δ for an
    # additive in-group effect δ; k is the mean score of the design itself (values = match), and dividing by it
    # puts the estimate in the question's units, comparable with the LMM's match coefficient.
    design = np.where(np.isfinite(values), owns[labels].astype(float), np.nan)
    k = float(np.nanmean(rating_scores(design, owns)(np.ones(len(labels)))[np.arange(len(labels)), labels]))
    est, ci, sd = res.estimate / k, (res.ci95[0] / k, res.ci95[1] / k), res.sd / k
    dz = est / sd if sd > 0 else float("nan")
    return TestResult(
        name="in_group_preference", method=method, estimate=est, ci95=ci, statistic=res.estimate, p=res.p,
        effect_size={"name": "d_z (estimate / SD of the participants' scores; CI: the estimate's CI / SD)",
                     "value": dz, "ci95": [ci[0] / sd, ci[1] / sd] if sd > 0 else None},
        apa=f"M adjusted difference = {est:.2f}, 95% CI [{ci[0]:.2f}, {ci[1]:.2f}], "
            f"permutation {fmt_p(res.p)}, d_z = {dz:.2f}, n = {res.n}",
        extra={"n_participants": res.n, "n_permutations": res.n_perm, "design_scale": k},
    )
