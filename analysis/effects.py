"""Effect sizes and their 95% CIs: closed forms where they exist, a participant bootstrap where not."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import optimize, stats
from statsmodels.stats.proportion import proportion_confint


def eta2p_from_f(f: float, df1: float, df2: float) -> float:
    """Partial eta squared from an F statistic: F·df1 / (F·df1 + df2)."""
    return float(f * df1 / (f * df1 + df2))


def eta2p_ci(f: float, df1: float, df2: float, level: float = 0.95) -> tuple[float, float]:
    """CI for partial eta² by inverting the noncentral F distribution (Steiger, 2004), λ → λ/(λ+df1+df2+1)."""
    alpha = 1 - level

    def bound(target: float) -> float:
        g = lambda lam: stats.ncf.cdf(f, df1, df2, lam) - target  # noqa: E731 — decreasing in lam
        if g(0.0) < 0:
            return 0.0
        hi = max(10.0, f * df1 * 4)
        while g(hi) > 0:
            hi *= 2
        return float(optimize.brentq(g, 0.0, hi))

    lo, hi = bound(1 - alpha / 2), bound(alpha / 2)
    return lo / (lo + df1 + df2 + 1), hi / (hi + df1 + df2 + 1)


def epsilon_squared(h: float | np.ndarray, n: int) -> float | np.ndarray:
    """ε² for Kruskal–Wallis: H / ((n² − 1) / (n + 1)) (Tomczak & Tomczak, 2014); one per H for an array."""
    eps = np.asarray(h) / ((n ** 2 - 1) / (n + 1))
    return float(eps) if np.ndim(eps) == 0 else eps


def cliffs_delta(x: np.ndarray, y: np.ndarray) -> float | np.ndarray:
    """Cliff's δ = P(X > Y) − P(X < Y) over all pairs, computed as 2U/(n1·n2) − 1 from Mann–Whitney's U
    (midranks count ties as half), which is O(n log n) instead of all n1·n2 pairs. Along the last axis: 2-D
    x and y (one resample per row) give one δ per row."""
    n1, n2 = x.shape[-1], y.shape[-1]
    ranks = stats.rankdata(np.concatenate([x, y], axis=-1), axis=-1)
    u = ranks[..., :n1].sum(axis=-1) - n1 * (n1 + 1) / 2
    delta = 2 * u / (n1 * n2) - 1
    return float(delta) if np.ndim(delta) == 0 else delta


def rank_biserial_paired(d: np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation for a Wilcoxon signed-rank test (Kerby, 2014)."""
    d = d[d != 0]
    if len(d) == 0:
        return 0.0
    ranks = stats.rankdata(np.abs(d))
    return float((ranks[d > 0].sum() - ranks[d < 0].sum()) / ranks.sum())


def bootstrap_ci(samples: list[np.ndarray], statistic: Callable[..., np.ndarray], n_boot: int = 1000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile CI, resampling each sample (a culture group's participants) with replacement.

    `statistic` gets every resample at once, each sample as an (n_boot × n) array, and returns n_boot values
    (scipy's tests take axis=1), which is 5× faster than one call per resample."""
    rng = np.random.default_rng(seed)
    draws = [np.empty((n_boot, len(s)), dtype=np.intp) for s in samples]
    for b in range(n_boot):  # the draws in the order a resample-by-resample loop makes them
        for s, d in zip(samples, draws):
            d[b] = rng.integers(0, len(s), len(s))
    values = np.asarray(statistic(*[s[d] for s, d in zip(samples, draws)]), dtype=float)
    values = values[np.isfinite(values)]
    if len(values) < n_boot / 2:
        return float("nan"), float("nan")
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)


def wilson_ci(k: int, n: int) -> tuple[float, float]:
    if n == 0:
        return float("nan"), float("nan")
    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    return float(min(lo, k / n)), float(max(hi, k / n))  # guard against rounding at 0 and 1
