"""Participant-level non-parametric layer: one number per participant, so no model assumptions.

Kruskal–Wallis across culture groups on per-participant mean ratings (ε², bootstrap CI), pairwise
Mann–Whitney post-hocs with Holm correction (Cliff's δ, bootstrap CI), and a Wilcoxon signed-rank test of
each participant's in-group difference (mean own-culture rating − mean other-culture rating) against 0.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from culturelab.analysis.effects import bootstrap_ci, cliffs_delta, epsilon_squared, rank_biserial_paired
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

    def boot_eps(*s: np.ndarray) -> float:
        pooled = np.concatenate(s)
        return epsilon_squared(stats.kruskal(*s).statistic, len(pooled)) if np.ptp(pooled) > 0 else np.nan

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


def ingroup_signed_rank(df: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> TestResult:
    """Per participant: mean own-culture rating − mean other-culture rating; Wilcoxon signed-rank vs 0."""
    method = "Wilcoxon signed-rank on per-participant in-group differences (own − other culture mean rating)"
    cell = df.groupby(["participant", "match"])["value"].mean().unstack()
    if 0 not in cell or 1 not in cell:
        return TestResult.skip("in_group_preference", method, "no participant saw both own and other cultures")
    diff = (cell[1] - cell[0]).dropna().to_numpy()
    if len(diff) < 2 or np.all(diff == 0):
        return TestResult.skip("in_group_preference", method, "fewer than two non-zero participant differences")
    w, p = stats.wilcoxon(diff)
    r = rank_biserial_paired(diff)
    ci = bootstrap_ci([diff], rank_biserial_paired, n_boot, seed)
    med = float(np.median(diff))
    return TestResult(
        name="in_group_preference", method=method, estimate=med,
        ci95=bootstrap_ci([diff], np.median, n_boot, seed), statistic=float(w), p=float(p),
        effect_size={"name": "matched-pairs rank-biserial r (CI: bootstrap)", "value": r, "ci95": list(ci)},
        apa=f"Mdn difference = {med:.2f}, V = {w:.1f}, {fmt_p(p)}, r = {fmt_bounded(r)}, n = {len(diff)}",
    )
