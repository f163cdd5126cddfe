"""The stable Python API (docs/contracts.md, Contract 3): `culturelab.analysis.in_group_preference(frame)`."""

from __future__ import annotations

import pandas as pd
import pytest

from culturelab.analysis import in_group_preference
from culturelab.analysis.load import load_package, long_table


def _analysed_frame(package, results: dict, question: str) -> pd.DataFrame:
    excluded = {e["participant_id"] for e in results["exclusions"]}
    d = long_table(load_package(package), question)
    return d[~d["participant"].isin(excluded)][["participant", "culture_group", "stimulus", "stimulus_culture",
                                                "value", "match"]]


def test_api_returns_what_analyze_reports(analysed, small_package):
    results, _, _ = analysed
    reported = results["questions"]["beauty"]["tests"][0]
    got = in_group_preference(_analysed_frame(small_package, results, "beauty"), units="slider points (0–100)")
    assert got.estimate == pytest.approx(reported["estimate"], rel=1e-6)
    assert list(got.ci95) == pytest.approx(reported["ci95"], rel=1e-6)
    assert got.p == pytest.approx(reported["p"], rel=1e-6)
    assert got.df == pytest.approx(reported["df"], rel=1e-6)
    assert got.method == reported["method"]
    assert "(1|participant) + (1|stimulus)" in got.method and len(got.ci95) == 2


def test_api_names_what_is_wrong_with_a_frame(analysed, small_package):
    results, _, _ = analysed
    frame = _analysed_frame(small_package, results, "beauty")
    with pytest.raises(ValueError, match="lacks column.*stimulus_culture"):
        in_group_preference(frame.drop(columns=["stimulus_culture"]))
    with pytest.raises(ValueError, match="match must be 0 or 1"):
        in_group_preference(frame.assign(match=2))
    with pytest.raises(ValueError, match="confounded"):
        in_group_preference(frame[frame["culture_group"] == frame["culture_group"].iloc[0]])
