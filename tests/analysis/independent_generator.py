"""A data generator for validating the in-group test that shares no code with `culturelab.analysis.simulate`
and is not a twin of the model the analysis fits: it writes ratings the way people give them, not the way
the LMM assumes (issue 9).

Per participant p of group g and stimulus s of culture c (every culture rated, stimuli drawn per culture):

    latent = a_p + b_s + sg[s, g] + pc[p, c] + appeal[c] + delta * own(g, c) + noise
    noise ~ t with 5 df (heavier tails than the normal the LMM assumes), scaled to SD `sd_noise`

- `sg`: a stimulus's appeal to one group; `pc`: a participant's taste for one culture (the two variance
  components issue 9 found inflating the two-intercept model's type-I error);
- `appeal`: cultures nobody owns, liked less by everyone;
- response styles: each participant reads the scale their own way, answer = shift_p + stretch_p · latent
  (acquiescence and extremity, with group-level means that differ), on a 1–7 Likert scale by cutting at
  fixed points, or on a continuous scale as it is;
- careless responders: a share answers at random (uniform over the scale) or straight-lines one value;
  `flag` marks them, as the analysis's exclusion rules would (random answerers by their speed).

Returns the long frame of the stable API (`participant`, `culture_group`, `stimulus`, `stimulus_culture`,
`value`, `match`) plus `careless`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Scenario:
    groups: int = 3
    owned: tuple[int, ...] = (0, 1, 2)  # group i owns culture owned[i]; cultures beyond are unowned
    cultures: int = 4
    participants_per_group: int = 14
    stimuli_per_culture: int = 6
    trials_per_culture: int = 6
    delta: float = 0.0  # in-group effect, latent units (the answer scale when styles average to 1)
    sd_participant: float = 0.5
    sd_stimulus: float = 0.4
    sd_stimulus_group: float = 0.4
    sd_participant_culture: float = 0.4
    sd_noise: float = 0.8
    unowned_appeal: float = -0.7
    likert: bool = False
    style_sd: float = 0.0  # SD of log stretch per participant; shift SD is the same
    group_shift: tuple[float, ...] = field(default=(0.0, 0.3, -0.3))
    careless: float = 0.0  # share of careless responders


def generate(sc: Scenario, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_stim = sc.cultures * sc.stimuli_per_culture
    culture_of = np.arange(n_stim) // sc.stimuli_per_culture
    b = rng.normal(0, sc.sd_stimulus, n_stim)
    sg = rng.normal(0, sc.sd_stimulus_group, (n_stim, sc.groups))
    appeal = np.where(np.arange(sc.cultures) >= len(sc.owned), sc.unowned_appeal, 0.0)
    t_scale = sc.sd_noise / np.sqrt(5 / 3)  # a t(5) variable has variance 5/3
    frames = []
    for g in range(sc.groups):
        own = np.zeros(sc.cultures)
        own[sc.owned[g]] = 1.0
        for j in range(sc.participants_per_group):
            a = rng.normal(0, sc.sd_participant)
            pc = rng.normal(0, sc.sd_participant_culture, sc.cultures)
            shown = np.concatenate([rng.choice(np.flatnonzero(culture_of == c), sc.trials_per_culture, replace=False)
                                    for c in range(sc.cultures)])
            c = culture_of[shown]
            latent = (a + b[shown] + sg[shown, g] + pc[c] + appeal[c] + sc.delta * own[c] +
                      t_scale * rng.standard_t(5, len(shown)))
            stretch = np.exp(rng.normal(-sc.style_sd ** 2 / 2, sc.style_sd))  # mean 1: delta stays the truth
            shift = sc.group_shift[g % len(sc.group_shift)] + rng.normal(0, sc.style_sd)
            answer = shift + stretch * latent
            careless = rng.random() < sc.careless
            if sc.likert:
                answer = np.clip(np.round(4 + 1.2 * answer), 1, 7)
                if careless:
                    answer = (np.full(len(shown), rng.integers(1, 8)) if rng.random() < 0.5
                              else rng.integers(1, 8, len(shown))).astype(float)
            elif careless:
                answer = rng.uniform(-3, 3, len(shown))
            frames.append(pd.DataFrame({
                "participant": f"g{g}p{j}", "culture_group": f"group{g}", "stimulus": [f"s{s}" for s in shown],
                "stimulus_culture": [f"culture{k}" for k in c], "value": answer, "match": own[c].astype(int),
                "careless": careless}))
    return pd.concat(frames, ignore_index=True)
