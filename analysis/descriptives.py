"""Cell descriptives: culture group × stimulus culture."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats


def rating_descriptives(df: pd.DataFrame) -> list[dict]:
    """n, mean and SD over responses; the 95% CI is a t interval over the participants' cell means, since
    one participant's responses are not independent."""
    rows = []
    for (g, c), sub in df.groupby(["culture_group", "stimulus_culture"], observed=True):
        pm = sub.groupby("participant")["value"].mean().to_numpy()
        m = float(sub["value"].mean())
        if len(pm) > 1:
            half = stats.t.ppf(0.975, len(pm) - 1) * pm.std(ddof=1) / np.sqrt(len(pm))
            ci = [float(pm.mean() - half), float(pm.mean() + half)]
        else:
            ci = [None, None]
        rows.append({"culture_group": g, "stimulus_culture": c, "n": len(sub), "n_participants": len(pm),
                     "mean": m, "sd": float(sub["value"].std(ddof=1)) if len(sub) > 1 else None, "ci95": ci})
    return rows
