"""Simulation-based power for the in-group test of the crossed-random-effects LMM.

For each design cell (participants per group × stimuli per culture × planted effect d) it draws `nsim`
data sets from the generative model of `culturelab.analysis.simulate` (careless responders off: power
is for the data that survive exclusions), fits exactly the model the analysis fits and counts the
Satterthwaite t tests of `match` with p < alpha. mixedlm's powerSim/powerCurve simulate from one fitted
pilot model instead; this loop keeps the planted values exact and uses the analysis's own test.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import product

import numpy as np
import pandas as pd
from scipy import stats

from culturelab.analysis.effects import wilson_ci
from culturelab.analysis.models import fit_lmm
from culturelab.analysis.simulate import SimulationOptions, simulate

log = logging.getLogger(__name__)


@dataclass
class PowerOptions:
    participants_per_group: list[int] = field(default_factory=lambda: [20, 40])
    stimuli_per_culture: list[int] = field(default_factory=lambda: [8])
    effects: list[float] = field(default_factory=lambda: [0.2])  # planted in-group d
    trials_per_participant: int | None = None  # Likert trials; None: every stimulus once
    kind: str = "likert"  # or "slider"
    nsim: int = 100
    alpha: float = 0.05
    seed: int = 0
    base: SimulationOptions = field(default_factory=lambda: SimulationOptions(
        careless_fraction=0.0, attention_fail_fraction=0.0, incomplete_fraction=0.0))


def rating_frame(tables: dict[str, pd.DataFrame], match: dict[str, list[str]], kind: str) -> pd.DataFrame:
    """The analysis's long table straight from simulated tables (no file round trip)."""
    r = tables["responses"]
    r = r[r["trial_kind"] == kind]
    groups = tables["participants"].set_index("participant_id")["culture_group"]
    cultures = tables["stimuli"].set_index("stimulus_id")["culture"]
    d = pd.DataFrame({"participant": r["participant_id"].to_numpy(),
                      "culture_group": r["participant_id"].map(groups).to_numpy(),
                      "stimulus": r["stimulus_id"].to_numpy(),
                      "stimulus_culture": r["stimulus_id"].map(cultures).to_numpy(),
                      "value": r["value"].astype(float).to_numpy()})
    d["match"] = [int(c in match.get(g, [])) for g, c in zip(d["culture_group"], d["stimulus_culture"])]
    return d


def match_p(d: pd.DataFrame) -> tuple[float, float]:
    """(estimate, Satterthwaite p) of `match` in the analysis's model."""
    import mixedlm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lf = fit_lmm(d, "match + culture_group + stimulus_culture")
        i = lf.names.index("match")
        b, se = float(lf.fit.beta[i]), float(np.sqrt(lf.fit.vcov()[i, i]))
        df = float(mixedlm.satterthwaite_df(lf.fit).df[i])
    return b, float(2 * stats.t.sf(abs(b / se), df))


def simulate_cell(base: SimulationOptions, kind: str, trials: int | None, seed: int) -> pd.DataFrame:
    n_stim = base.stimuli_per_culture * len(base.cultures)
    n = trials or n_stim
    opts = replace(base, seed=seed, likert_trials=n if kind == "likert" else 0,
                   slider_trials=n if kind == "slider" else 0, choice_trials=0, attention_checks=0)
    tables, _ = simulate(opts)
    return rating_frame(tables, opts.match, kind)


def power_grid(opts: PowerOptions, progress: Callable[[], None] | None = None) -> list[dict]:
    """Power (share of p < alpha, Wilson 95% CI) for every design cell."""
    rows = []
    cell = 0
    for n_pp, n_spc, d in product(opts.participants_per_group, opts.stimuli_per_culture, opts.effects):
        base = replace(opts.base, participants_per_group=n_pp, stimuli_per_culture=n_spc, ingroup_d=d)
        hits, estimates, failed = 0, [], 0
        for k in range(opts.nsim):
            data = simulate_cell(base, opts.kind, opts.trials_per_participant, opts.seed + 100_003 * cell + k)
            try:
                b, p = match_p(data)
            except (ValueError, np.linalg.LinAlgError) as exc:  # a refit that fails is counted, not hidden
                log.warning("power simulation fit failed: %s", exc)
                failed += 1
                continue
            hits += p < opts.alpha
            estimates.append(b)
            if progress:
                progress()
        valid = opts.nsim - failed
        rows.append({"participants_per_group": n_pp, "stimuli_per_culture": n_spc, "effect_d": d,
                     "groups": len(base.groups), "trials_per_participant": opts.trials_per_participant or
                     n_spc * len(base.cultures), "kind": opts.kind, "nsim": valid, "failed_fits": failed,
                     "power": hits / valid if valid else None, "power_ci95": list(wilson_ci(hits, valid)),
                     "mean_estimate": float(np.mean(estimates)) if estimates else None})
        cell += 1
    return rows
