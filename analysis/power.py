"""Simulation-based power for the in-group test, with the model the analysis fits.

For each design cell (participants per group × stimuli per culture × planted effect d) it draws `nsim`
data sets from the generative model of `culturelab.analysis.simulate` (careless responders off: power
is for the data that survive exclusions), runs the analysis's own in-group test on each and counts
p < alpha: for ratings the LMM with the random intercepts the analysis's rule keeps
(`culturelab.analysis.api.in_group_preference`), for choices the appeal-adjusted mixed logistic model
(`culturelab.analysis.choices.ingroup_choice_glmm`). The variance components, including stimulus × group
and participant × culture variation and the appeal of cultures nobody owns, are the researcher's to set:
power at a small effect depends on them. mixedlm's powerSim/powerCurve simulate from one fitted pilot
model instead; this loop keeps the planted values exact.

`study_plan` reads the design a researcher wrote (the study file, docs/contracts.md): groups, match, questions, the
trials per participant (split evenly over the questions, as the platform's assignment does) and, from the
stimulus set manifests beside it, the cultures and stimuli per culture.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from culturelab.analysis.api import in_group_preference
from culturelab.analysis.choices import ingroup_choice_glmm
from culturelab.analysis.effects import wilson_ci
from culturelab.analysis.simulate import SimulationOptions, simulate

log = logging.getLogger(__name__)
FIT_ERRORS = (ValueError, RuntimeError, ArithmeticError, np.linalg.LinAlgError)


class StudyFileError(ValueError):
    """The study file cannot be read or lacks what power needs; the message names the field."""


@dataclass
class PowerQuestion:
    id: str
    kind: str  # likert | slider | choice
    trials: int | None  # per participant; None: every stimulus once (ratings) or 12 pairs (choice)
    likert_points: int = 7


@dataclass
class PowerOptions:
    participants_per_group: list[int] = field(default_factory=lambda: [20, 40])
    stimuli_per_culture: list[int] = field(default_factory=lambda: [8])
    effects: list[float] = field(default_factory=lambda: [0.2])  # planted in-group d
    questions: list[PowerQuestion] = field(default_factory=lambda: [PowerQuestion("liking", "likert", None)])
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


def choice_frame(tables: dict[str, pd.DataFrame], match: dict[str, list[str]]) -> pd.DataFrame:
    """The analysis's choice table (culturelab.analysis.choices.choice_table) from simulated tables."""
    r = tables["responses"]
    r = r[r["trial_kind"] == "choice"]
    groups = tables["participants"].set_index("participant_id")["culture_group"]
    cultures = tables["stimuli"].set_index("stimulus_id")["culture"]
    d = pd.DataFrame({"participant": r["participant_id"].to_numpy(),
                      "culture_group": r["participant_id"].map(groups).to_numpy(),
                      "stimulus_a": r["stimulus_id"].to_numpy(), "stimulus_b": r["stimulus_id_b"].to_numpy(),
                      "culture_a": r["stimulus_id"].map(cultures).to_numpy(),
                      "culture_b": r["stimulus_id_b"].map(cultures).to_numpy(),
                      "chose_b": r["value"].astype(int).to_numpy()})
    d["own_a"] = [int(c in match.get(g, [])) for g, c in zip(d["culture_group"], d["culture_a"])]
    d["own_b"] = [int(c in match.get(g, [])) for g, c in zip(d["culture_group"], d["culture_b"])]
    return d


def simulate_cell(base: SimulationOptions, question: PowerQuestion, seed: int) -> pd.DataFrame:
    n = question.trials or (12 if question.kind == "choice" else base.stimuli_per_culture * len(base.cultures))
    opts = replace(base, seed=seed, likert_points=question.likert_points, attention_checks=0,
                   likert_trials=n if question.kind == "likert" else 0,
                   slider_trials=n if question.kind == "slider" else 0,
                   choice_trials=n if question.kind == "choice" else 0)
    tables, _ = simulate(opts)
    if question.kind == "choice":
        return choice_frame(tables, opts.match)
    return rating_frame(tables, opts.match, question.kind)


def in_group_test(d: pd.DataFrame, kind: str) -> tuple[float, float]:
    """(estimate, p) of the analysis's in-group test on one simulated data set."""
    if kind == "choice":
        test, _ = ingroup_choice_glmm(d)
        if test.skipped:
            raise ValueError(test.skipped)
        return float(test.estimate), float(test.p)
    test = in_group_preference(d)
    return float(test.estimate), float(test.p)


def power_grid(opts: PowerOptions, progress: Callable[[], None] | None = None) -> list[dict]:
    """Power (share of p < alpha, Wilson 95% CI) for every question and design cell."""
    rows = []
    cell = 0
    for question in opts.questions:
        for n_pp, n_spc, d in product(opts.participants_per_group, opts.stimuli_per_culture, opts.effects):
            base = replace(opts.base, participants_per_group=n_pp, stimuli_per_culture=n_spc, ingroup_d=d)
            hits, estimates, failed = 0, [], 0
            for k in range(opts.nsim):
                data = simulate_cell(base, question, opts.seed + 100_003 * cell + k)
                try:
                    b, p = in_group_test(data, question.kind)
                except FIT_ERRORS as exc:  # a refit that fails is counted, not hidden
                    log.warning("power simulation fit failed: %s", exc)
                    failed += 1
                    continue
                finally:
                    if progress:
                        progress()
                hits += p < opts.alpha
                estimates.append(b)
            valid = opts.nsim - failed
            rows.append({"question": question.id, "kind": question.kind, "participants_per_group": n_pp,
                         "stimuli_per_culture": n_spc, "effect_d": d, "groups": len(base.groups),
                         "cultures": len(base.cultures), "trials_per_participant": question.trials,
                         "nsim": valid, "failed_fits": failed, "power": hits / valid if valid else None,
                         "power_ci95": list(wilson_ci(hits, valid)),
                         "mean_estimate": float(np.mean(estimates)) if estimates else None})
            cell += 1
    return rows


def default_groups(n: int) -> tuple[list[dict], dict[str, list[str]]]:
    """n culture groups, each owning one culture: the simulator's three, then numbered ones."""
    from culturelab.analysis.simulate import DEFAULT_GROUPS, DEFAULT_MATCH

    groups = [dict(g) for g in DEFAULT_GROUPS[:n]]
    match = {g["id"]: list(DEFAULT_MATCH[g["id"]]) for g in groups}
    for i in range(len(groups), n):
        gid = f"group_{i + 1}"
        groups.append({"id": gid, "label": {"en": f"Group {i + 1}"}})
        match[gid] = [f"culture_{i + 1}"]
    return groups, match


def _manifest_cultures(study_dir: Path, sets: list) -> tuple[list[str], int | None]:
    """Cultures and the smallest number of stimuli per culture over the study's stimulus set manifests
    (Contract 1); ([], None) when no manifest is readable beside the study file."""
    counts: dict[str, int] = {}
    for s in sets:
        path = study_dir / str(s) / "manifest.json"
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            log.info("no readable stimulus manifest at %s; cultures come from the match table", path)
            continue
        for c in manifest.get("cultures", []):
            counts.setdefault(c, 0)
        for stim in manifest.get("stimuli", []):
            counts[stim.get("culture")] = counts.get(stim.get("culture"), 0) + 1
    counts = {c: n for c, n in counts.items() if c}
    return list(counts), (min(counts.values()) if counts else None)


def study_plan(path: str | Path) -> tuple[SimulationOptions, list[PowerQuestion], int | None]:
    """(simulation base with the study's groups, match and cultures; its questions with their trials per
    participant; stimuli per culture in its stimulus sets, or None) from a study YAML file."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise StudyFileError(f"{path.name}: cannot be read: {exc}".splitlines()[0]) from exc
    if not isinstance(doc, dict):
        raise StudyFileError(f"{path.name}: not a study (expected a mapping)")
    groups = doc.get("culture_groups")
    if not isinstance(groups, list) or len(groups) < 2 or not all(isinstance(g, dict) and "id" in g for g in groups):
        raise StudyFileError(f"{path.name}: culture_groups must list two or more groups with an id")
    match = doc.get("match") or {}
    if not isinstance(match, dict) or not all(isinstance(v, list) for v in match.values()):
        raise StudyFileError(f"{path.name}: match must map a group id to a list of cultures")
    ids = [g["id"] for g in groups]
    for g in match:
        if g not in ids:
            raise StudyFileError(f"{path.name}: match.{g}: not a culture group id")
    owned = list(dict.fromkeys(c for v in match.values() for c in v))
    if len({frozenset(match.get(g, [])) for g in ids}) < 2:
        raise StudyFileError(f"{path.name}: match gives every group the same cultures: no in-group test to plan")
    cultures, per_culture = _manifest_cultures(path.parent, doc.get("stimulus_sets") or [])
    unowned = {c: 0.0 for c in cultures if c not in owned}
    questions = doc.get("questions")
    if not isinstance(questions, list) or not questions:
        raise StudyFileError(f"{path.name}: questions: at least one question is needed")
    trials = (doc.get("design") or {}).get("trials_per_participant")
    if not isinstance(trials, int) or trials < 1:
        raise StudyFileError(f"{path.name}: design.trials_per_participant must be a positive integer")
    per_question = trials // len(questions)  # the platform splits the trials evenly over the questions
    plan = []
    for i, q in enumerate(questions):
        kind = q.get("kind") if isinstance(q, dict) else None
        if kind not in ("likert", "slider", "choice"):
            raise StudyFileError(f"{path.name}: questions[{i}].kind must be likert, slider or choice")
        scale = q.get("scale") or {}
        points = int(scale.get("max", 7)) - int(scale.get("min", 1)) + 1 if kind == "likert" else 7
        plan.append(PowerQuestion(str(q.get("id", f"q{i}")), kind, max(per_question, 1), points))
    base = SimulationOptions(groups=[{"id": g["id"], "label": g.get("label") or {"en": g["id"]}} for g in groups],
                             match={g: list(v) for g, v in match.items()}, unowned=unowned,
                             careless_fraction=0.0, attention_fail_fraction=0.0, incomplete_fraction=0.0)
    return base, plan, per_culture
