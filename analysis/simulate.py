"""`culturelab simulate-data`: a Contract 2 export package drawn from a generative model with planted effects.

The model, per participant p (in culture group g) and stimulus s (of culture c):

    eta[p, s] = u_p + w_s + v[s, g] + t[p, c] + a_c + delta * match(g, c) + e[p, s]
    u_p ~ N(0, sd_participant), w_s ~ N(0, sd_stimulus), e ~ N(0, sd_residual)
    v[s, g] ~ N(0, sd_stimulus_group)       a stimulus's appeal to one group
    t[p, c] ~ N(0, sd_participant_culture)  a person's taste for one culture
    a_c = unowned[c] * sd_total for cultures no group owns (e.g. -0.7: liked 0.7 SD less by all), else 0
    delta = ingroup_d * sd_total,   sd_total = sqrt of the sum of the five variances above

so `ingroup_d` is the in-group effect as a standardized mean difference over all variance components
(Westfall, Kenny & Judd, 2014). Likert answers add a group response style (a shift and a stretch of the
latent before it is cut into points); slider answers are `50 + slider_scale * eta`, so the match
coefficient a linear mixed model should recover on a slider question is `slider_scale * delta`, written to
datapackage.json under `culturelab_simulation.truth`. Choice trials choose the right-hand image with
log-odds `position_bias + choice_scale * (mu_b - mu_a)`, mu = eta less u_p and e. Careless responders
straight-line (and leave the page more often: `hidden_ms`) or answer too fast; some fail attention checks;
some never finish.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from culturelab.analysis.load import OPTIONAL_COLUMNS, TABLES

COLUMNS = {name: cols + OPTIONAL_COLUMNS.get(name, []) for name, cols in TABLES.items()}  # as the platform writes

DEFAULT_GROUPS = [
    {"id": "east_asian", "label": {"en": "East Asian", "zh": "东亚"}},
    {"id": "west_african", "label": {"en": "West African", "zh": "西非"}},
    {"id": "european", "label": {"en": "European", "zh": "欧洲"}},
]
DEFAULT_MATCH = {"east_asian": ["seigaiha"], "west_african": ["kente"], "european": ["meander"]}
FIELD_TYPES = {"string": "string", "integer": "integer", "boolean": "boolean", "datetime": "datetime"}


@dataclass
class SimulationOptions:
    groups: list[dict] = field(default_factory=lambda: [dict(g) for g in DEFAULT_GROUPS])
    match: dict[str, list[str]] = field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_MATCH.items()})
    participants_per_group: int = 30
    stimuli_per_culture: int = 8
    likert_trials: int = 24  # per participant, balanced over stimulus cultures
    slider_trials: int = 12
    choice_trials: int = 12
    attention_checks: int = 2
    likert_points: int = 7
    ingroup_d: float = 0.3
    sd_participant: float = 0.6
    sd_stimulus: float = 0.4
    sd_residual: float = 0.7
    sd_stimulus_group: float = 0.3  # stimulus × culture-group variation (issue 9)
    sd_participant_culture: float = 0.3  # participant × stimulus-culture variation
    unowned: dict[str, float] = field(default_factory=dict)  # culture nobody owns -> its appeal, in sd_total units
    style_shift: list[float] = field(default_factory=lambda: [0.0, 0.4, -0.3])  # per group, acquiescence
    style_scale: list[float] = field(default_factory=lambda: [1.0, 1.3, 0.8])  # per group, extremity
    slider_scale: float = 15.0
    choice_scale: float = 1.5
    position_bias: float = 0.2
    careless_fraction: float = 0.04  # half straight-line the Likert items, half answer randomly and fast
    attention_fail_fraction: float = 0.03
    incomplete_fraction: float = 0.03
    seed: int = 0

    @property
    def cultures(self) -> list[str]:
        return list(dict.fromkeys([*(c for owned in self.match.values() for c in owned), *self.unowned]))

    @property
    def sd_total(self) -> float:
        return float(np.sqrt(self.sd_participant ** 2 + self.sd_stimulus ** 2 + self.sd_residual ** 2 +
                             self.sd_stimulus_group ** 2 + self.sd_participant_culture ** 2))


def _balanced(rng: np.random.Generator, by_culture: list[np.ndarray], n: int) -> np.ndarray:
    """n stimulus indices spread as evenly as possible over the cultures (the platform's balance rule)."""
    k = len(by_culture)
    per = [n // k + (1 if i < n % k else 0) for i in range(k)]
    picks = [rng.choice(idx, size=min(m, len(idx)), replace=False) for idx, m in zip(by_culture, per)]
    return rng.permutation(np.concatenate(picks))


def simulate(opts: SimulationOptions) -> tuple[dict[str, pd.DataFrame], dict]:
    """Draw the three Contract 2 tables and the datapackage `culturelab` design for `opts`."""
    rng = np.random.default_rng(opts.seed)
    cultures = opts.cultures
    n_stim = opts.stimuli_per_culture * len(cultures)
    stim_culture = np.repeat(cultures, opts.stimuli_per_culture)
    stim_ids = [f"{c}-{i:04d}" for c in cultures for i in range(opts.stimuli_per_culture)]
    w = rng.normal(0, opts.sd_stimulus, n_stim)
    v = rng.normal(0, opts.sd_stimulus_group, (n_stim, len(opts.groups)))
    appeal = np.array([opts.unowned.get(c, 0.0) * opts.sd_total for c in stim_culture])
    culture_index = np.array([cultures.index(c) for c in stim_culture])
    by_culture = [np.flatnonzero(stim_culture == c) for c in cultures]
    delta = opts.ingroup_d * opts.sd_total
    cuts = np.arange(1, opts.likert_points) - opts.likert_points / 2  # equally spaced thresholds on the latent
    t0 = datetime(2026, 11, 1, tzinfo=UTC)

    participants, responses = [], []
    for gi, group in enumerate(opts.groups):
        g = group["id"]
        owned = np.array([c in opts.match.get(g, []) for c in stim_culture], dtype=float)
        for j in range(opts.participants_per_group):
            pid = f"p-{g}-{j:04d}"
            u = rng.normal(0, opts.sd_participant)
            # everything about stimulus s that participant p's ratings and choices share
            mu = w + v[:, gi] + rng.normal(0, opts.sd_participant_culture, len(cultures))[culture_index] + appeal
            mu = mu + delta * owned
            kind_draw = rng.random()
            careless = "none"
            if kind_draw < opts.careless_fraction / 2:
                careless = "straightline"
            elif kind_draw < opts.careless_fraction:
                careless = "fast"
            fails_attention = rng.random() < opts.attention_fail_fraction
            incomplete = rng.random() < opts.incomplete_fraction
            trials: list[dict] = []
            straight_value = int(rng.integers(1, opts.likert_points + 1))
            for s in _balanced(rng, by_culture, opts.likert_trials):
                eta = u + mu[s] + rng.normal(0, opts.sd_residual)
                latent = opts.style_scale[gi % len(opts.style_scale)] * eta / opts.sd_total * 1.6
                latent += opts.style_shift[gi % len(opts.style_shift)]
                value = int(np.searchsorted(cuts, latent) + 1)
                if careless == "straightline":
                    value = straight_value
                elif careless == "fast":
                    value = int(rng.integers(1, opts.likert_points + 1))
                trials.append({"trial_kind": "likert", "question_id": "liking", "stimulus_id": stim_ids[s],
                               "stimulus_id_b": "", "value": str(value)})
            for s in _balanced(rng, by_culture, opts.slider_trials):
                eta = u + mu[s] + rng.normal(0, opts.sd_residual)
                value = float(np.clip(np.round(50 + opts.slider_scale * eta), 0, 100))
                if careless != "none":
                    value = float(rng.integers(0, 101))
                trials.append({"trial_kind": "slider", "question_id": "beauty", "stimulus_id": stim_ids[s],
                               "stimulus_id_b": "", "value": str(int(value))})
            for _ in range(opts.choice_trials):
                ca, cb = rng.choice(len(cultures), size=2, replace=False)
                a, b = rng.choice(by_culture[ca]), rng.choice(by_culture[cb])
                p_right = 1 / (1 + np.exp(-(opts.position_bias + opts.choice_scale * (mu[b] - mu[a]))))
                chose_b = int(rng.random() < (0.5 if careless != "none" else p_right))
                trials.append({"trial_kind": "choice", "question_id": "preference", "stimulus_id": stim_ids[a],
                               "stimulus_id_b": stim_ids[b], "value": str(chose_b)})
            trials = [trials[i] for i in rng.permutation(len(trials))]
            n_fail = 1 if fails_attention else 0
            for k in range(opts.attention_checks):
                ok = k >= n_fail
                pos = int(rng.integers(0, len(trials) + 1))
                trials.insert(pos, {"trial_kind": "attention", "question_id": "", "stimulus_id": "",
                                    "stimulus_id_b": "", "value": "blue" if ok else "red", "correct": ok})
            if incomplete:
                trials = trials[: len(trials) // 2]
            n_att = sum(1 for t in trials if t["trial_kind"] == "attention")
            n_passed = sum(1 for t in trials if t.get("correct") is True)
            start = t0 + timedelta(minutes=int(rng.integers(0, 60 * 24 * 20)))
            clock = start
            for idx, t in enumerate(trials):
                rt = int(rng.integers(150, 400)) if careless == "fast" else int(rng.lognormal(np.log(2200), 0.4))
                if careless == "straightline":
                    rt = int(rng.lognormal(np.log(900), 0.3))
                away = {"straightline": 0.3, "fast": 0.0}.get(careless, 0.02)  # chance the page is left mid-trial
                hidden = int(rng.lognormal(np.log(8000), 0.8)) if rng.random() < away else 0
                rt += hidden  # the page was away for part of the trial, so the trial took that much longer
                clock += timedelta(milliseconds=rt + 300)
                correct = t.pop("correct", None)
                responses.append({"response_id": str(uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | len(responses))),
                                  "participant_id": pid, "trial_index": idx, **t,
                                  "correct": "" if correct is None else ("true" if correct else "false"),
                                  "rt_ms": rt, "created_at": clock.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                                  "hidden_ms": hidden})
            participants.append({
                "participant_id": pid, "study": "simulated", "culture_group": g,
                "country_of_birth": "", "country_of_residence": "", "language": "zh" if gi == 0 else "en",
                "age": int(rng.integers(18, 70)), "gender": str(rng.choice(["female", "male", "non-binary"])),
                "art_training": int(rng.integers(0, 4)), "source": "link",
                "status": "started" if incomplete else "completed",
                "started_at": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "completed_at": "" if incomplete else clock.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "attention_passed": n_passed,
                "attention_total": n_att,
                "languages": "zh;en" if gi == 0 else "en",
            })
    stimuli = pd.DataFrame({
        "stimulus_id": stim_ids, "stimulus_set": "simulated", "culture": stim_culture,
        "mix": [json.dumps({c: 1.0}) for c in stim_culture], "method": "cgan",
        "seed": np.arange(n_stim), "sha256": "",
    })
    tables = {
        "participants": pd.DataFrame(participants, columns=[c for c, _, _ in COLUMNS["participants"]]),
        "stimuli": stimuli[[c for c, _, _ in COLUMNS["stimuli"]]],
        "responses": pd.DataFrame(responses, columns=[c for c, _, _ in COLUMNS["responses"]]),
    }
    group_ids = [g["id"] for g in opts.groups]
    design = {
        "match": {g: owned for g, owned in opts.match.items() if g in group_ids},
        "questions": {
            "liking": {"kind": "likert", "scale": {"min": 1, "max": opts.likert_points},
                       "text": {"en": "How much do you like this pattern?", "zh": "你有多喜欢这个图案?"}},
            "beauty": {"kind": "slider", "scale": {"min": 0, "max": 100},
                       "text": {"en": "How beautiful is this pattern?", "zh": "这个图案有多美?"}},
            "preference": {"kind": "choice", "scale": {"min": 0, "max": 1},
                           "text": {"en": "Which pattern do you prefer?", "zh": "你更喜欢哪一个图案?"}},
        },
        "culture_groups": opts.groups,
        "study": {"slug": "simulated", "title": {"en": "Simulated pattern preferences", "zh": "模拟图案偏好"}},
    }
    design["questions"] = {q: v for q, v in design["questions"].items()
                           if getattr(opts, {"liking": "likert_trials", "beauty": "slider_trials",
                                             "preference": "choice_trials"}[q]) > 0}
    truth = {"ingroup_d": opts.ingroup_d, "slider_match": opts.slider_scale * delta,
             "choice_match_logodds": opts.choice_scale * delta, "options": asdict(opts)}
    return tables, {"design": design, "truth": truth}


def _schema(columns: list[tuple[str, str, bool]], descriptions: dict[str, str]) -> dict:
    return {"fields": [{"name": c, "type": FIELD_TYPES[t], "description": descriptions.get(c, c.replace("_", " "))}
                       for c, t, _ in columns]}


DESCRIPTIONS = {
    "participant_id": "pseudonym of the participant", "culture_group": "the study's culture group",
    "status": "started|completed|withdrawn|screened_out", "attention_passed": "attention checks passed",
    "stimulus_id": "stimulus id (choice: the left-hand image)", "culture": "the stimulus's culture",
    "mix": "culture weights, JSON text", "trial_index": "0-based order shown",
    "trial_kind": "likert|slider|choice|attention", "stimulus_id_b": "choice: the right-hand image",
    "value": "likert point; slider 0-100; choice 0 = chose stimulus_id, 1 = chose stimulus_id_b",
    "correct": "attention only", "rt_ms": "response time measured in the browser, ms",
    "hidden_ms": "of rt_ms, how long the page was hidden or out of focus, ms",
    "languages": "languages the participant speaks, BCP 47 tags joined by ';'",
}


def write_package(tables: dict[str, pd.DataFrame], meta: dict, out: str | Path, fmt: str = "csv") -> Path:
    """Write Contract 2: the three tables and datapackage.json (resources, table schemas, `culturelab`)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    columns = COLUMNS
    resources = []
    for name, df in tables.items():
        path = f"{name}.{fmt}"
        if fmt == "parquet":
            df.astype(str).to_parquet(out / path, index=False)
        else:
            df.to_csv(out / path, index=False, encoding="utf-8", lineterminator="\n")
        resources.append({"name": name, "path": path, "format": fmt, "profile": "tabular-data-resource",
                          "mediatype": "text/csv" if fmt == "csv" else "application/vnd.apache.parquet",
                          "schema": _schema(columns[name], DESCRIPTIONS)})
    resources[2]["schema"]["foreignKeys"] = [
        {"fields": "participant_id", "reference": {"resource": "participants", "fields": "participant_id"}},
        {"fields": "stimulus_id", "reference": {"resource": "stimuli", "fields": "stimulus_id"}},
    ]
    descriptor = {"profile": "tabular-data-package", "name": "culturelab-simulated",
                  "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "resources": resources, "culturelab": meta["design"],
                  "culturelab_simulation": {"truth": meta["truth"]}}
    (out / "datapackage.json").write_text(json.dumps(descriptor, ensure_ascii=False, indent=2), encoding="utf-8")
    return out
