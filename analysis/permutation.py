"""Participant-level in-group tests that are adjusted for stimulus culture, without model assumptions.

Each participant gets one score per possible group label: how much more they liked (or chose) the cultures
that label owns than everyone else did, i.e. their own-minus-other contrast with the same contrast of the
whole sample subtracted. A culture that everyone likes less moves both terms alike and cancels, which the
old own-minus-other signed-rank test did not do (issue 9: 96.5 % false positives on such data).

The scores of different participants share the sample-wide reference, so they are not independent and a
one-sample test (Wilcoxon) would understate the variance. The p value is therefore a permutation test of
the group labels (the participants' own data stay with them; only who "owns" what is shuffled, keeping the
group sizes), which is exact under the null that a participant's profile over cultures does not depend on
their group. The CI is a percentile bootstrap over participants within group that recomputes the reference
in every resample, so it carries the reference's uncertainty too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

ScoreFn = Callable[[np.ndarray], np.ndarray]  # participant weights (N,) -> scores (N participants × G labels)


@dataclass
class LabelTest:
    estimate: float  # mean score over participants at their own labels
    p: float  # two-sided permutation p
    ci95: tuple[float, float]  # stratified participant bootstrap, percentile
    n: int  # participants with a score
    sd: float  # SD of the participants' scores (for d_z)
    n_perm: int


def _mean_at(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray | float:
    """Weighted mean of scores[p, labels[p]] over participants with a finite score; `labels` may be a stack
    (permutations × participants), which gives one mean per row."""
    picked = scores[np.arange(scores.shape[0]), np.atleast_2d(labels)]
    w = np.ones(scores.shape[0]) if weights is None else weights
    ok = np.isfinite(picked)
    means = np.where(ok, picked, 0.0) @ w / np.maximum(ok @ w, 1e-12)
    return means if labels.ndim > 1 else float(means[0])


def label_permutation_test(score: ScoreFn, labels: np.ndarray, n_perm: int = 2000, n_boot: int = 1000,
                           seed: int = 0) -> LabelTest:
    """Permutation test of the group labels for the mean score, and its stratified bootstrap CI."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    scores = score(np.ones(n))
    observed = _mean_at(scores, labels)
    own = scores[np.arange(n), labels]
    ok = np.isfinite(own)
    perms = np.stack([rng.permutation(labels) for _ in range(n_perm)])
    null = _mean_at(scores, perms)
    tail_hi = (1 + np.sum(null >= observed - 1e-12)) / (1 + n_perm)
    tail_lo = (1 + np.sum(null <= observed + 1e-12)) / (1 + n_perm)
    p = float(min(1.0, 2 * min(tail_hi, tail_lo)))
    members = [np.flatnonzero(labels == g) for g in np.unique(labels)]
    boots = np.empty(n_boot)
    for b in range(n_boot):
        # resample each group's participants (the design's group sizes stay fixed): weights = times drawn
        drawn = np.concatenate([idx[rng.integers(0, len(idx), len(idx))] for idx in members])
        w = np.bincount(drawn, minlength=n).astype(float)
        boots[b] = _mean_at(score(w), labels, w)
    boots = boots[np.isfinite(boots)]
    lo, hi = np.percentile(boots, [2.5, 97.5]) if len(boots) else (np.nan, np.nan)
    return LabelTest(float(observed), p, (float(lo), float(hi)), int(ok.sum()),
                     float(np.std(own[ok], ddof=1)) if ok.sum() > 1 else float("nan"), n_perm)


def rating_scores(values: np.ndarray, owns: np.ndarray) -> ScoreFn:
    """Scores for ratings. `values`: participants × cultures mean ratings (NaN where a participant rated none
    of a culture); `owns`: labels × cultures, True where the label's group owns the culture.

    score[p, g] = mean over g's cultures of (y_pc − m_c) − mean over the other cultures of (y_pc − m_c),
    m_c the weighted mean of culture c over participants: the participant's own-minus-other contrast less the
    sample's. NaN where the participant lacks an own or an other culture under label g."""
    seen = np.isfinite(values)
    filled = np.where(seen, values, 0.0)
    own_w = owns.astype(float).T  # cultures × labels
    other_w = (~owns).astype(float).T

    def score(w: np.ndarray) -> np.ndarray:
        m = (w @ filled) / np.maximum(w @ seen, 1e-12)
        resid = np.where(seen, filled - m, 0.0)
        n_own, n_other = seen @ own_w, seen @ other_w
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where((n_own > 0) & (n_other > 0), resid @ own_w / n_own - resid @ other_w / n_other, np.nan)

    return score


def choice_scores(participant: np.ndarray, culture_a: np.ndarray, culture_b: np.ndarray, chose_b: np.ndarray,
                  owns: np.ndarray, n_participants: int) -> ScoreFn:
    """Scores for choices. Per trial, arrays of participant index, the two images' culture indices and
    whether the right-hand image was chosen; `owns` as in `rating_scores`.

    score[p, g] = mean over p's trials where exactly one image's culture is owned under label g of
    (chose the owned image − the rate at which the whole sample chose that culture over the other one): the
    own-culture choice rate less what the two cultures' general appeal predicts, so a culture everyone avoids
    does not count as an in-group preference."""
    k = owns.shape[1]
    winner = np.where(chose_b == 1, culture_b, culture_a)
    loser = np.where(chose_b == 1, culture_a, culture_b)
    own_a, own_b = owns[:, culture_a], owns[:, culture_b]  # labels × trials
    valid = own_a != own_b
    own_culture = np.where(own_b, culture_b, culture_a)
    other_culture = np.where(own_b, culture_a, culture_b)
    chose_own = (chose_b == own_b).astype(float)

    n_labels = owns.shape[0]
    cell = (np.arange(n_labels)[:, None] * n_participants + participant).ravel()  # (label, participant) per trial
    count = np.bincount(cell, weights=valid.ravel(), minlength=n_labels * n_participants)

    def score(w: np.ndarray) -> np.ndarray:
        wt = w[participant]
        wins = np.bincount(winner * k + loser, weights=wt, minlength=k * k).reshape(k, k)
        shown = wins + wins.T
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where(shown > 0, wins / shown, 0.5)  # rate[x, y]: x chosen when paired with y
        excess = np.where(valid, chose_own - rate[own_culture, other_culture], 0.0)  # labels × trials
        total = np.bincount(cell, weights=excess.ravel(), minlength=n_labels * n_participants)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / count, np.nan).reshape(n_labels, n_participants).T

    return score
