"""The stable Python API for notebooks and tools (docs/contracts.md, Contract 3): the headline in-group test on a long
pandas frame, exactly as `culturelab analyze` computes it for a Likert or slider question."""

from __future__ import annotations

import pandas as pd

from culturelab.analysis.models import fit_lmm, main_fixed, match_test
from culturelab.analysis.result import TestResult

COLUMNS = ("participant", "culture_group", "stimulus", "stimulus_culture", "value", "match")


def in_group_preference(frame: pd.DataFrame, units: str = "units of value") -> TestResult:
    """Fit `value ~ match + culture_group + stimulus_culture` with the random intercepts the analysis's rule
    keeps (culturelab.analysis.models) and return the `match` test: `estimate`, `ci95`, `p`, `df`, `method`
    (and the rest of Contract 3's test fields). `units` only names the value's units in `method`.

    Raises ValueError naming the problem when a column is missing, `match` is not 0/1, `value` is not numeric,
    or the design cannot separate `match` from the culture main effects (e.g. a single culture group)."""
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks column(s) {', '.join(missing)} (needs {', '.join(COLUMNS)})")
    df = frame[list(COLUMNS)].copy()
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    if df["value"].isna().any():
        raise ValueError(f"value: {int(df['value'].isna().sum())} rows are missing or not numeric")
    if not df["match"].isin([0, 1]).all():
        raise ValueError("match must be 0 or 1 in every row")
    df["match"] = df["match"].astype(int)
    for col in ("participant", "culture_group", "stimulus", "stimulus_culture"):
        df[col] = df[col].astype(str)
    fixed, problem, _, _ = main_fixed(df)
    if problem:
        raise ValueError(problem)
    return match_test(fit_lmm(df.reset_index(drop=True), fixed), units)
