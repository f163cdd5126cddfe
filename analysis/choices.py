"""Choice trials (two images, pick one): own-culture choice and Bradley–Terry worth per stimulus culture.

On trials where exactly one image's culture belongs to the participant's group (the study's match table),
`chose_own` is the outcome. The mixed logistic model

    chose_own ~ own_right + appeal[c_1] + … + appeal[c_K-1] + (1|participant) + (1|own_stimulus)

(mixedlm glmer, Laplace) has own_right = ±0.5 for the own image shown right/left, and for every stimulus
culture but the first a Bradley–Terry appeal column, +1 when the own image is of that culture and −1 when
the other image is. Its intercept is the log-odds of choosing the own-culture image at a balanced position,
over and above what the two cultures' appeal to everyone predicts: the in-group preference (0 = none). The
appeal terms are what keep a culture that everyone avoids from looking like an in-group effect; they are
identified because the same culture is "own" for some groups and "other" for the rest.
"""

from __future__ import annotations

import warnings

import choix
import mixedlm
import numpy as np
import pandas as pd
from scipy import stats

from culturelab.analysis.effects import wilson_ci
from culturelab.analysis.load import Package
from culturelab.analysis.permutation import choice_scores, label_permutation_test
from culturelab.analysis.result import TestResult, apa_z, fmt_p

GLMM_FORMULA = "chose_own ~ own_right + appeal[culture] + (1|participant) + (1|own_stimulus)"
GLMM_METHOD = (f"mixed logistic model (mixedlm glmer, Laplace): {GLMM_FORMULA}, appeal[culture] = +1 own image / "
               "−1 other image of that culture (Bradley–Terry, adjusts for stimulus culture); estimate = intercept, "
               "log-odds of choosing the own-culture image beyond the cultures' general appeal; Wald z CI")


def choice_table(pkg: Package, question_id: str) -> pd.DataFrame:
    r = pkg.responses
    r = r[(r["question_id"] == question_id) & (r["trial_kind"] == "choice") & r["value_num"].notna()]
    groups = pkg.participants.set_index("participant_id")["culture_group"]
    cultures = pkg.stimuli.set_index("stimulus_id")["culture"]
    out = pd.DataFrame({
        "participant": r["participant_id"].to_numpy(),
        "culture_group": r["participant_id"].map(groups).to_numpy(),
        "stimulus_a": r["stimulus_id"].to_numpy(), "stimulus_b": r["stimulus_id_b"].to_numpy(),
        "culture_a": r["stimulus_id"].map(cultures).to_numpy(),
        "culture_b": r["stimulus_id_b"].map(cultures).to_numpy(),
        "chose_b": r["value_num"].astype(int).to_numpy(),
    })
    out = out[out["culture_group"] != ""].reset_index(drop=True)
    out["own_a"] = [int(pkg.design.owns(g, c)) for g, c in zip(out["culture_group"], out["culture_a"])]
    out["own_b"] = [int(pkg.design.owns(g, c)) for g, c in zip(out["culture_group"], out["culture_b"])]
    return out


def own_choice_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Trials where exactly one image is the participant's own culture."""
    d = df[df["own_a"] != df["own_b"]].copy()
    d["chose_own"] = (d["chose_b"] == d["own_b"]).astype(int)
    d["own_right"] = d["own_b"] - 0.5
    d["own_stimulus"] = np.where(d["own_b"] == 1, d["stimulus_b"], d["stimulus_a"])
    return d.reset_index(drop=True)


def _appeal_columns(d: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """+1/−1 appeal column per stimulus culture but the first (the reference); returns (columns, name → culture)."""
    own_c = np.where(d["own_b"] == 1, d["culture_b"], d["culture_a"])
    other_c = np.where(d["own_b"] == 1, d["culture_a"], d["culture_b"])
    cultures = sorted(set(own_c) | set(other_c))
    cols = {f"appeal_{k}": (own_c == c).astype(float) - (other_c == c).astype(float)
            for k, c in enumerate(cultures) if k > 0}
    return pd.DataFrame(cols, index=d.index), {f"appeal_{k}": c for k, c in enumerate(cultures)}


def ingroup_choice_glmm(df: pd.DataFrame) -> tuple[TestResult, dict]:
    if df.empty:
        return TestResult.skip("in_group_preference", GLMM_METHOD, "no analysed responses to this question"), {}
    d = own_choice_rows(df)
    if d.empty or d["participant"].nunique() < 2:
        return TestResult.skip("in_group_preference", GLMM_METHOD,
                               "fewer than two participants saw an own-culture image paired with another "
                               "culture's"), {}
    appeal, culture_of = _appeal_columns(d)
    own_c = pd.Series(np.where(d["own_b"] == 1, d["culture_b"], d["culture_a"]))
    if own_c.groupby(d["culture_group"]).agg(frozenset).nunique() < 2:
        return TestResult.skip("in_group_preference", GLMM_METHOD,
                               "every group owns the same cultures (or there is one group): the in-group effect "
                               "cannot be told apart from the cultures' general appeal"), {}
    d = pd.concat([d, appeal], axis=1)
    fixed = " + ".join(["own_right", *appeal.columns])
    formula = f"chose_own ~ {fixed} + (1|participant) + (1|own_stimulus)"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = mixedlm.glmer(formula, d, family=mixedlm.families.Binomial(),
                            control=mixedlm.glmerControl(check_rankX="warning+drop.cols"))
    notes = list(dict.fromkeys(str(w.message).splitlines()[0] for w in caught))
    names = list(fit.matrices.fixed_names)
    labels = [f"appeal[{culture_of[n]}]" if n in culture_of else n for n in names]
    beta, se = np.asarray(fit.beta), np.sqrt(np.diag(fit.vcov()))
    z = beta / se
    p = 2 * stats.norm.sf(np.abs(z))
    ci = np.stack([beta - 1.959964 * se, beta + 1.959964 * se], axis=1)
    i = names.index("(Intercept)")
    table = {"formula": GLMM_FORMULA + f" (reference culture: {culture_of['appeal_0']})", "notes": notes,
             "n_obs": len(d), "fixed": [{"term": n, "estimate": float(b), "se": float(s), "z": float(zz),
                                         "p": float(pp), "ci95": [float(c[0]), float(c[1])]}
                                        for n, b, s, zz, pp, c in zip(labels, beta, se, z, p, ci)]}
    odds = float(np.exp(beta[i]))
    test = TestResult(
        name="in_group_preference", method=GLMM_METHOD, estimate=float(beta[i]),
        ci95=(float(ci[i, 0]), float(ci[i, 1])), statistic=float(z[i]), p=float(p[i]),
        effect_size={"name": "odds ratio of choosing the own-culture image (appeal-adjusted)", "value": odds,
                     "ci95": [float(np.exp(ci[i, 0])), float(np.exp(ci[i, 1]))]},
        apa=apa_z(float(z[i]), float(p[i]), float(beta[i]), (float(ci[i, 0]), float(ci[i, 1])), "OR", odds),
        extra={"n_trials": len(d), "own_choice_rate": float(d["chose_own"].mean())},
    )
    return test, table


def ingroup_choice_participants(df: pd.DataFrame, n_boot: int = 1000, seed: int = 0,
                                n_perm: int = 2000) -> TestResult:
    """Participant-level: own-culture choice rate beyond the two cultures' appeal to the whole sample, tested
    by permuting the culture-group labels (culturelab.analysis.permutation)."""
    method = ("permutation test of culture-group labels (2,000 permutations) on per-participant own-culture "
              "choice rates less the rate at which the whole sample chose that culture over the other "
              "(adjusted for stimulus culture); CI: participant bootstrap within group")
    if df.empty or df["culture_group"].nunique() < 2:
        return TestResult.skip("in_group_preference", method, "needs two or more culture groups with data")
    cultures = sorted(set(df["culture_a"]) | set(df["culture_b"]))
    groups = sorted(df["culture_group"].unique())
    owns = np.array([[bool(((df["culture_group"] == g) & (((df["culture_a"] == c) & (df["own_a"] == 1)) |
                                                            ((df["culture_b"] == c) & (df["own_b"] == 1)))).any())
                      for c in cultures] for g in groups])
    if (owns == owns[0]).all():
        return TestResult.skip("in_group_preference", method, "the match table gives every group the same cultures")
    people = pd.Categorical(df["participant"])
    index = {c: k for k, c in enumerate(cultures)}
    group_of = df.groupby(people.codes)["culture_group"].first()
    labels = group_of.map({g: i for i, g in enumerate(groups)}).to_numpy()
    score = choice_scores(people.codes, df["culture_a"].map(index).to_numpy(), df["culture_b"].map(index).to_numpy(),
                          df["chose_b"].to_numpy(), owns, len(people.categories))
    res = label_permutation_test(score, labels, n_perm, n_boot, seed)
    if res.n < 2:
        return TestResult.skip("in_group_preference", method, "fewer than two participants with own-culture pairs")
    dz = res.estimate / res.sd if res.sd > 0 else float("nan")
    return TestResult(
        name="in_group_preference", method=method, estimate=res.estimate, ci95=res.ci95, statistic=res.estimate,
        p=res.p,
        effect_size={"name": "d_z (mean excess own-choice rate / SD over participants)", "value": dz,
                     "ci95": [res.ci95[0] / res.sd, res.ci95[1] / res.sd] if res.sd > 0 else None},
        apa=f"M excess own-choice rate = {res.estimate:.2f}, 95% CI [{res.ci95[0]:.2f}, {res.ci95[1]:.2f}], "
            f"permutation {fmt_p(res.p)}, d_z = {dz:.2f}, n = {res.n}",
        extra={"n_participants": res.n, "n_permutations": res.n_perm},
    )


def choice_descriptives(df: pd.DataFrame) -> list[dict]:
    """How often each stimulus culture was chosen when shown, per group (Wilson CI over trials)."""
    long = pd.concat([
        pd.DataFrame({"culture_group": df["culture_group"], "stimulus_culture": df["culture_a"],
                      "chosen": 1 - df["chose_b"]}),
        pd.DataFrame({"culture_group": df["culture_group"], "stimulus_culture": df["culture_b"],
                      "chosen": df["chose_b"]}),
    ])
    rows = []
    for (g, c), sub in long.groupby(["culture_group", "stimulus_culture"]):
        k, n = int(sub["chosen"].sum()), len(sub)
        sd = float(sub["chosen"].std(ddof=1)) if n > 1 else None
        rows.append({"culture_group": g, "stimulus_culture": c, "n": n, "mean": k / n, "sd": sd,
                     "ci95": list(wilson_ci(k, n))})
    return rows


def _bt_worth(wins: np.ndarray) -> np.ndarray:
    """Log-worth from a K×K matrix of win counts (wins[i, j]: i chosen over j), centred to mean 0.

    A small regularization keeps the estimate finite when one culture always wins (choix docs)."""
    params = choix.ilsr_pairwise_dense(wins, alpha=0.01)
    return params - params.mean()


def bradley_terry(df: pd.DataFrame, n_boot: int = 200, seed: int = 0) -> list[dict]:
    """Bradley–Terry log-worth of each stimulus culture per participant group (choix I-LSR), centred to
    mean 0, with a percentile CI from resampling the group's participants."""
    d = df[df["culture_a"] != df["culture_b"]]
    cultures = sorted(set(d["culture_a"]) | set(d["culture_b"]))
    index = {c: i for i, c in enumerate(cultures)}
    k = len(cultures)
    rng = np.random.default_rng(seed)
    rows = []
    for g, sub in d.groupby("culture_group"):
        if len(sub) < 2:
            continue
        winner = np.where(sub["chose_b"] == 1, sub["culture_b"], sub["culture_a"])
        loser = np.where(sub["chose_b"] == 1, sub["culture_a"], sub["culture_b"])
        person = pd.Categorical(sub["participant"]).codes
        per_person = np.zeros((person.max() + 1, k, k))
        np.add.at(per_person, (person, [index[w] for w in winner], [index[lo] for lo in loser]), 1)
        worth = _bt_worth(per_person.sum(axis=0))
        boots = [_bt_worth(per_person[rng.integers(0, len(per_person), len(per_person))].sum(axis=0))
                 for _ in range(n_boot)]
        lo, hi = np.percentile(np.array(boots), [2.5, 97.5], axis=0)
        for c, i in index.items():
            rows.append({"culture_group": g, "stimulus_culture": c, "log_worth": float(worth[i]),
                         "ci95": [float(lo[i]), float(hi[i])], "n_comparisons": len(sub)})
    return rows
