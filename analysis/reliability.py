"""Reliability per culture group: Krippendorff's α (ordinal for Likert, interval for sliders) over the
participant × stimulus matrix, and split-half consistency of stimulus means (Spearman–Brown corrected)."""

from __future__ import annotations

import krippendorff
import numpy as np
import pandas as pd


def _alpha(values: np.ndarray, level: str) -> float:
    pairable = values[:, (~np.isnan(values)).sum(axis=0) >= 2]  # units rated by two or more participants
    if values.shape[0] < 2 or len(np.unique(pairable[~np.isnan(pairable)])) < 2:
        return float("nan")  # α is undefined without pairable values that can disagree: reported as missing
    return float(krippendorff.alpha(reliability_data=values, level_of_measurement=level))


def krippendorff_alpha(df: pd.DataFrame, level: str) -> float:
    """α with participants as raters and stimuli as units; unrated cells are missing, not zeros."""
    matrix = df.pivot_table(index="participant", columns="stimulus", values="value", aggfunc="mean")
    return _alpha(matrix.to_numpy(dtype=float), level)


def krippendorff_alpha_ci(df: pd.DataFrame, level: str, n_boot: int = 100, seed: int = 0) -> list[float | None]:
    """Percentile 95% CI for α, resampling the units (stimuli) with replacement."""
    values = df.pivot_table(index="participant", columns="stimulus", values="value", aggfunc="mean").to_numpy(float)
    if values.shape[1] < 3:
        return [None, None]
    rng = np.random.default_rng(seed)
    boots = np.array([_alpha(values[:, rng.integers(0, values.shape[1], values.shape[1])], level)
                      for _ in range(n_boot)])
    boots = boots[np.isfinite(boots)]
    if len(boots) < n_boot / 2:
        return [None, None]
    return [float(x) for x in np.percentile(boots, [2.5, 97.5])]


def split_half(df: pd.DataFrame, n_splits: int = 200, seed: int = 0) -> dict:
    """Random halves of the participants; correlate the halves' stimulus means; Spearman–Brown 2r/(1+r).

    Returns the mean over splits and the 2.5/97.5 percentiles of the split distribution (that spread is
    the variability over splits, not a sampling CI)."""
    rng = np.random.default_rng(seed)
    participants = df["participant"].unique()
    if len(participants) < 4:
        return {"spearman_brown": None, "split_range95": None, "n_splits": 0}
    codes = pd.Categorical(df["participant"], categories=participants).codes
    stim = pd.Categorical(df["stimulus"])
    sc, n_stim = stim.codes, len(stim.categories)
    values = df["value"].to_numpy(dtype=float)
    out = []
    for _ in range(n_splits):
        half = rng.permutation(len(participants)) < len(participants) // 2
        in_a = half[codes]
        means = []
        for mask in (in_a, ~in_a):
            s = np.bincount(sc[mask], weights=values[mask], minlength=n_stim)
            n = np.bincount(sc[mask], minlength=n_stim)
            means.append(np.where(n > 0, s / np.maximum(n, 1), np.nan))
        ok = ~np.isnan(means[0]) & ~np.isnan(means[1])
        if ok.sum() < 3 or np.std(means[0][ok]) == 0 or np.std(means[1][ok]) == 0:
            continue
        r = np.corrcoef(means[0][ok], means[1][ok])[0, 1]
        out.append(2 * r / (1 + r))
    if not out:
        return {"spearman_brown": None, "split_range95": None, "n_splits": 0}
    return {"spearman_brown": float(np.mean(out)), "split_range95": [float(x) for x in np.percentile(out, [2.5, 97.5])],
            "n_splits": len(out)}


def reliability_by_group(df: pd.DataFrame, kind: str) -> list[dict]:
    level = "ordinal" if kind == "likert" else "interval"
    rows = []
    for group, sub in df.groupby("culture_group", observed=True):
        rows.append({"culture_group": group, "n_participants": int(sub["participant"].nunique()),
                     "krippendorff_alpha": krippendorff_alpha(sub, level),
                     "krippendorff_alpha_ci95": krippendorff_alpha_ci(sub, level), "alpha_level": level,
                     "split_half": split_half(sub)})
    return rows
