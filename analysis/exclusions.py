"""Pre-registered exclusion rules (configurable with --exclusions FILE, YAML or JSON).

Rules run in a fixed order, the flow of a CONSORT-style diagram: incomplete sessions, failed attention
checks, too-fast responding (median RT below a floor), straight-lining (longstring: the longest run of
identical consecutive Likert answers), and, when switched on, away from the page (the share of trials during
which the page was hidden or out of focus for longer than a limit, from Contract 2's `hidden_ms`; off by
default, and never applied to a package without `hidden_ms`). A participant is listed once, under the first
rule that removes them; `all_reasons` keeps every rule they broke.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

import pandas as pd
import yaml

from culturelab.analysis.load import Package

REASONS = ("incomplete", "attention", "too_fast", "straightlining", "hidden")


class ExclusionConfigError(ValueError):
    """The exclusions file is unreadable or names an unknown rule or option."""


@dataclass
class ExclusionRules:
    incomplete: bool = True  # status other than `completed`
    attention: bool = True
    attention_min_passed: float = 1.0  # fraction of attention checks a participant must pass
    too_fast: bool = True
    rt_floor_ms: float = 300.0  # median RT over rating and choice trials below this: too fast
    straightlining: bool = True
    longstring_max_fraction: float = 0.6  # longest identical run / Likert answers above this: straight-lining
    longstring_min_items: int = 10  # fewer Likert answers than this: the rule is not applied
    hidden: bool = False  # opt-in: Contract 3 lists the four reasons above as the defaults
    hidden_trial_ms: float = 10000.0  # a trial during which the page was hidden longer than this counts as away
    hidden_max_fraction: float = 0.2  # more than this share of a participant's trials away: excluded

    @classmethod
    def from_file(cls, path: str | Path) -> ExclusionRules:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
            data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        except (OSError, json.JSONDecodeError, yaml.YAMLError) as exc:
            raise ExclusionConfigError(f"{path.name}: cannot be read: {exc}".splitlines()[0]) from exc
        return cls.from_dict(data or {}, source=path.name)

    @classmethod
    def from_dict(cls, data: dict, source: str = "exclusions") -> ExclusionRules:
        if not isinstance(data, dict):
            raise ExclusionConfigError(f"{source}: expected a mapping of rule options")
        known = {f.name: f.type for f in fields(cls)}
        rules = cls()
        for key, value in data.items():
            if key not in known:
                raise ExclusionConfigError(f"{source}: unknown option {key!r} (known: {', '.join(known)})")
            default = getattr(rules, key)
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise ExclusionConfigError(f"{source}: {key} must be true or false")
            elif not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ExclusionConfigError(f"{source}: {key} must be a non-negative number")
            setattr(rules, key, type(default)(value))
        return rules


def longstring(values: pd.Series) -> int:
    """Longest run of identical consecutive values (Johnson, 2005), in the order shown."""
    if values.empty:
        return 0
    runs = (values != values.shift()).cumsum()
    return int(runs.value_counts().max())


def _longstrings(likert: pd.DataFrame) -> pd.Series:
    """`longstring` for every participant at once (rows sorted by participant, then trial order)."""
    pid, value = likert["participant_id"], likert["value_num"]
    new_run = (value != value.shift()) | (pid != pid.shift())
    runs = likert.assign(run=new_run.cumsum()).groupby(["participant_id", "run"]).size()
    return runs.groupby(level="participant_id").max()


def participant_checks(pkg: Package) -> pd.DataFrame:
    """Per participant: status, attention fraction, median RT, Likert longstring — what the rules look at."""
    p = pkg.participants.set_index("participant_id")
    r = pkg.responses.sort_values(["participant_id", "trial_index"])
    answered = r[r["trial_kind"] != "attention"]
    likert = r[r["trial_kind"] == "likert"]
    out = pd.DataFrame(index=p.index)
    out["culture_group"] = p["culture_group"]
    out["status"] = p["status"]
    total = p["attention_total"].astype(float)
    out["attention_fraction"] = (p["attention_passed"].astype(float) / total).where(total > 0, 1.0)
    out["median_rt_ms"] = answered.groupby("participant_id")["rt_ms"].median().astype(float)
    out["n_likert"] = likert.groupby("participant_id").size()
    out["longstring"] = _longstrings(likert)
    hidden = answered["hidden_ms"].astype("Float64")
    out["n_hidden_measured"] = hidden.notna().groupby(answered["participant_id"]).sum()
    out["n_likert"] = out["n_likert"].fillna(0).astype(int)
    out["n_hidden_measured"] = out["n_hidden_measured"].fillna(0).astype(int)
    out["longstring"] = out["longstring"].fillna(0).astype(int)
    return out


def apply_exclusions(pkg: Package, rules: ExclusionRules) -> pd.DataFrame:
    """One row per participant: `reason` (first rule broken, or empty) and `all_reasons`."""
    c = participant_checks(pkg)
    broken = pd.DataFrame(False, index=c.index, columns=list(REASONS))
    if rules.incomplete:
        broken["incomplete"] = c["status"] != "completed"
    if rules.attention:
        broken["attention"] = c["attention_fraction"] < rules.attention_min_passed - 1e-9
    if rules.too_fast:
        broken["too_fast"] = c["median_rt_ms"].fillna(float("inf")) < rules.rt_floor_ms
    if rules.straightlining:
        enough = c["n_likert"] >= rules.longstring_min_items
        broken["straightlining"] = enough & (c["longstring"] > rules.longstring_max_fraction * c["n_likert"])
    if rules.hidden:
        r = pkg.responses[pkg.responses["trial_kind"] != "attention"]
        away = (r["hidden_ms"].astype("Float64") > rules.hidden_trial_ms).fillna(False).astype(int)
        n_away = away.groupby(r["participant_id"]).sum().reindex(c.index).fillna(0)
        share = n_away / c["n_hidden_measured"].clip(lower=1)
        c["away_fraction"] = share.where(c["n_hidden_measured"] > 0)
        broken["hidden"] = (c["away_fraction"] > rules.hidden_max_fraction).fillna(False).astype(bool)
    flags = broken.to_numpy()
    c["all_reasons"] = [[r for r, hit in zip(REASONS, row) if hit] for row in flags]
    c["reason"] = [reasons[0] if reasons else "" for reasons in c["all_reasons"]]
    return c


def flow_table(checks: pd.DataFrame) -> pd.DataFrame:
    """Participants remaining after each rule, by culture group (rows: steps; columns: groups + total)."""
    groups = sorted(g for g in checks["culture_group"].unique())
    rows = []
    remaining = checks
    rows.append({"step": "exported", **_counts(remaining, groups)})
    for reason in REASONS:
        removed = remaining[remaining["reason"] == reason]
        remaining = remaining[remaining["reason"] != reason]
        rows.append({"step": f"excluded: {reason}", **_counts(removed, groups)})
    rows.append({"step": "analysed", **_counts(remaining, groups)})
    return pd.DataFrame(rows).set_index("step")


def _counts(df: pd.DataFrame, groups: list[str]) -> dict[str, int]:
    counts = {g or "(no group)": int((df["culture_group"] == g).sum()) for g in groups}
    counts["total"] = len(df)
    return counts
