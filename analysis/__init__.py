"""culturelab.analysis: export package (Contract 2) in, report.html + results.json (Contract 3) out.

`in_group_preference(frame)` is the stable Python API (docs/contracts.md, Contract 3); it is imported on first use,
so `culturelab --help` does not load the model libraries."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from culturelab.analysis.result import TestResult


def in_group_preference(frame: pd.DataFrame, units: str = "units of value") -> TestResult:
    """The headline in-group test on a long frame; see `culturelab.analysis.api.in_group_preference`."""
    from culturelab.analysis.api import in_group_preference as fit

    return fit(frame, units)


__all__ = ["in_group_preference"]
