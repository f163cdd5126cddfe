"""The full analysis of one export package: exclusions, then per question the models, the non-parametric
layer, reliability and the sensitivity analyses; the result is the Contract 3 document (results.json) plus
what the report draws (extras that do not belong in results.json)."""

from __future__ import annotations

import logging
import multiprocessing
import os
import platform as _platform
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata

import numpy as np
import pandas as pd
from mixedlm.models.checks import ModelCheckError

from culturelab.analysis import choices, models, nonparametric, ordinal, reliability
from culturelab.analysis.descriptives import rating_descriptives
from culturelab.analysis.exclusions import ExclusionRules, apply_exclusions, flow_table
from culturelab.analysis.load import RATING_KINDS, Package, long_table
from culturelab.analysis.result import TestResult, holm

log = logging.getLogger(__name__)
SCHEMA = "culturelab.results/1"
# what the model libraries raise on data they cannot fit (singular designs, too few levels, no convergence)
FIT_ERRORS = (ValueError, RuntimeError, ArithmeticError, np.linalg.LinAlgError, ModelCheckError)
PACKAGES = ("culturelab", "numpy", "pandas", "scipy", "statsmodels", "mixedlm", "choix", "krippendorff", "plotly")
# the native thread pools of the background process: one thread each, since it shares the cores with this one
# (OpenBLAS threads that spin on a busy core made the CLMM's small solves ten times slower); these are read
# when the libraries load, so they must be in the environment the process starts with
_ONE_THREAD = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                      "RAYON_NUM_THREADS")}


@dataclass
class AnalysisOptions:
    clmm_max_responses: int = 6000  # the ordinal fit runs on a stratified participant subsample above this
    background_clmm: bool = True  # no-exclusion, z-score LMMs and CLMMs in a second process while this one works
    n_boot: int = 1000  # bootstrap resamples for effect-size CIs without a closed form
    bt_boot: int = 200  # bootstrap resamples for Bradley–Terry worth CIs
    seed: int = 0


def versions() -> dict[str, str]:
    out = {"python": _platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def steps(pkg: Package) -> int:
    """How many progress steps `run_analysis` reports (for the CLI's progress bar)."""
    return 1 + sum(7 if q["kind"] in RATING_KINDS else 3 for q in pkg.design.questions.values())


def _units(q: dict) -> str:
    scale = q.get("scale", {})
    kind = "Likert points" if q["kind"] == "likert" else "slider points"
    return f"{kind} ({scale.get('min')}–{scale.get('max')})"


def _lmm_or_skip(df: pd.DataFrame, q: dict, like: models.LmmFit | None = None,
                 full: bool = True) -> tuple[list[TestResult], dict, models.LmmFit | None]:
    """The four named LMM tests, Holm-adjusted; all skipped with the reason when there is no data."""
    names = ("in_group_preference", "participant_culture", "stimulus_culture", "culture_interaction")
    if df.empty:
        reason = "no analysed responses to this question"
        return [TestResult.skip(n, models.method_name(models.BASE_RANDOM), reason) for n in names], {}, None
    try:
        tests, tables, main = models.lmm_tests_with_fit(df, _units(q), like=like, interaction=full, tables=full)
    except FIT_ERRORS as exc:  # tiny or degenerate data: say why instead of stopping the whole report
        log.warning("LMM failed: %s", exc)
        return [TestResult.skip(n, models.method_name(models.BASE_RANDOM), f"the model could not be fitted: {exc}")
                for n in names], {}, None
    holm(tests)
    return tests, tables, main


def without_exclusions(all_rows: pd.DataFrame, q: dict, like: models.LmmFit | None = None) -> list[dict]:
    """The main model's three tests on every participant (culture_interaction needs a second model and is
    reported on the analysed participants only); run in the background process unless `like` starts it."""
    return [t.to_dict() for t in _lmm_or_skip(all_rows, q, like=like, full=False)[0]
            if t.name != "culture_interaction"]


def zscore_sensitivity(df: pd.DataFrame, terms: list[str] | None = None,
                       start: np.ndarray | None = None) -> tuple[dict, list[str] | None]:
    """The in-group test of the LMM on within-participant z-scores, and the random terms the fit started from
    (None when it was not run). `terms`/`start`: the main model's structure and estimates (the relative variance
    components barely change with z-scoring); without them the rule of models.py starts from the design."""
    z, n_flat = models.zscore_within(df)
    problem = "no participant has varying ratings" if z.empty else models.match_problem(z)
    if problem:
        zt, terms = TestResult.skip("in_group_preference", "LMM on within-participant z-scores", problem), None
    else:
        terms = list(terms) if terms is not None else models.supported_terms(z)[0]
        try:
            fixed = " + ".join(["match"] + [t for t in ("culture_group", "stimulus_culture") if z[t].nunique() > 1])
            zt = models.match_test(models.fit_lmm(z, fixed, terms=terms, start=start), "SD units")
            zt.method = "LMM on within-participant z-scored ratings (response styles removed); " + zt.method
        except FIT_ERRORS as exc:
            zt = TestResult.skip("in_group_preference", "LMM on within-participant z-scores",
                                 f"the model could not be fitted: {exc}")
    zt.extra["participants_without_variance"] = n_flat
    return zt.to_dict(), terms


def _rating_question(qid: str, q: dict, all_rows: pd.DataFrame, analysed: set[str], opts: AnalysisOptions,
                     tick: Callable[[str], None], futures: dict[str, Future]) -> tuple[dict, dict, Callable[[], None]]:
    """The main process's part of a rating question now, and a function that adds what the background process
    fits (called once everything else is done, so that this process does not wait while it has work)."""
    df = all_rows[all_rows["participant"].isin(analysed)].reset_index(drop=True)
    out: dict = {"kind": q["kind"], "scale": q.get("scale"), "text": q.get("text"), "n_responses": len(df),
                 "n_participants": int(df["participant"].nunique())}
    extras: dict = {}
    out["descriptives"] = rating_descriptives(df)
    tick(f"{qid}: linear mixed model")
    tests, tables, main = _lmm_or_skip(df, q)
    out["tests"] = [t.to_dict() for t in tests]
    out["models"] = tables
    if df.empty:
        for _ in range(2):
            tick(f"{qid}: skipped")
    else:
        tick(f"{qid}: participant-level tests")
        permutation = nonparametric.ingroup_permutation(df, n_boot=opts.n_boot, seed=opts.seed).to_dict()
        kw, posthoc = nonparametric.kruskal_groups(df, opts.n_boot, opts.seed)
        tick(f"{qid}: reliability")
        later = {"nonparametric": [kw.to_dict()], "posthoc": posthoc,
                 "reliability": reliability.reliability_by_group(df, q["kind"])}
        extras["participant_means"] = nonparametric.participant_means(df)

    def finish() -> None:
        tick(f"{qid}: same model without exclusions")
        if len(all_rows) > len(df):  # someone was excluded: the main model again on everyone (not the interaction)
            out["tests_without_exclusions"] = _result(futures.get("without"), "fit without exclusions")
            if out["tests_without_exclusions"] is None:
                out["tests_without_exclusions"] = without_exclusions(all_rows, q, like=main)
        else:
            out["tests_without_exclusions"] = []
            out["without_exclusions_note"] = ("nobody's responses to this question were excluded: the tests above "
                                              "are all")
        if df.empty:
            for _ in range(3):
                tick(f"{qid}: skipped")
            return
        tick(f"{qid}: within-participant z-scores")
        zscored = _result(futures.get("zscore"), "z-score fit")
        structure = (main.random, np.asarray(main.fit.theta)) if main else (None, None)
        if zscored is None or (main and zscored[1] is not None and zscored[1] != main.random):
            zscored = zscore_sensitivity(df, *structure)  # the background fit started from another structure
        sensitivity = [zscored[0]]
        tick(f"{qid}: ordinal model (CLMM)")
        if q["kind"] == "likert":
            try:
                result = futures["clmm"].result() if "clmm" in futures else ordinal.clmm_match(
                    df, opts.clmm_max_responses, opts.seed)
            except (*FIT_ERRORS, BrokenProcessPool) as exc:
                log.warning("CLMM for %s failed: %s", qid, exc)  # a sensitivity fit that fails is reported
                result = TestResult.skip("in_group_preference", ordinal.METHOD, f"the fit failed: {exc}")
            sensitivity.append(result.to_dict())
        out["sensitivity"] = [*sensitivity, permutation]
        out.update(later)  # after the sensitivity analyses, as results.json has always listed them
        tick(f"{qid}: done")

    return out, extras, finish


def _result(future: Future | None, what: str):
    """A background result, or None when there is none or the background process died (e.g. out of memory):
    the caller then computes it here."""
    if future is None:
        return None
    try:
        return future.result()
    except BrokenProcessPool as exc:
        log.warning("background %s failed: %s", what, exc)
        return None


def _glmm_or_skip(df: pd.DataFrame) -> tuple[TestResult, dict]:
    try:
        return choices.ingroup_choice_glmm(df)
    except FIT_ERRORS as exc:
        log.warning("choice GLMM failed: %s", exc)
        return TestResult.skip("in_group_preference", choices.GLMM_METHOD, f"the model could not be fitted: {exc}"), {}


def _choice_question(qid: str, q: dict, all_rows: pd.DataFrame, analysed: set[str], opts: AnalysisOptions,
                     tick: Callable[[str], None], futures: dict[str, Future]) -> tuple[dict, dict, Callable[[], None]]:
    """As `_rating_question`: the main process's part now, the model without exclusions when collected."""
    df = all_rows[all_rows["participant"].isin(analysed)].reset_index(drop=True)
    out: dict = {"kind": "choice", "text": q.get("text"), "n_responses": len(df),
                 "n_participants": int(df["participant"].nunique()),
                 "descriptives": choices.choice_descriptives(df)}
    tick(f"{qid}: mixed logistic model")
    test, table = _glmm_or_skip(df)
    holm([test])
    out["tests"] = [test.to_dict()]
    out["models"] = {"glmm": table} if table else {}
    later = {"tests_not_applicable": {
        n: "defined for rating questions; for choices see bradley_terry (worth per stimulus culture and group)"
        for n in ("participant_culture", "stimulus_culture", "culture_interaction")}}
    tick(f"{qid}: participant-level test")
    later["sensitivity"] = [choices.ingroup_choice_participants(df, opts.n_boot, opts.seed).to_dict()]
    tick(f"{qid}: Bradley–Terry worth")
    later["bradley_terry"] = choices.bradley_terry(df, opts.bt_boot, opts.seed)

    def finish() -> None:
        if len(all_rows) > len(df):  # someone was excluded: the model again on everyone
            test_all, _ = _result(futures.get("without"), "choice model without exclusions") or _glmm_or_skip(all_rows)
            holm([test_all])
            out["tests_without_exclusions"] = [test_all.to_dict()]
        else:
            out["tests_without_exclusions"] = []
            out["without_exclusions_note"] = ("nobody's responses to this question were excluded: the tests above "
                                              "are all")
        out.update(later)

    return out, {}, finish


def run_analysis(pkg: Package, rules: ExclusionRules | None = None, opts: AnalysisOptions | None = None,
                 progress: Callable[[str], None] | None = None) -> tuple[dict, dict]:
    """Analyse `pkg`; returns (results.json document, extras for the report)."""
    rules, opts = rules or ExclusionRules(), opts or AnalysisOptions()
    tick = progress or (lambda step: log.info("analysis step: %s", step))
    checks = apply_exclusions(pkg, rules)
    flow = flow_table(checks)
    analysed = set(checks.index[checks["reason"] == ""])
    tick("exclusions")
    design = pkg.design
    notes: list[str] = [f"inferred from the tables, not read from datapackage.json: {what}" for what in design.inferred]
    present = set(checks.loc[list(analysed), "culture_group"]) if analysed else set()
    for g in design.culture_groups:
        if g["id"] not in present:
            notes.append(f"culture group {g['id']!r} has no analysed participants; it is absent from the tests")
    if len(present) < 2:
        notes.append("fewer than two culture groups have analysed participants: tests that compare groups are "
                     "not run (each says why)")
    no_group = int((pkg.participants["culture_group"] == "").sum())
    if no_group:
        notes.append(f"{no_group} participants never chose a culture group (they did not finish): excluded as "
                     "incomplete, and absent from the models without exclusions, which need a group")
    for reason, n in pkg.dropped.items():
        notes.append(f"{n} responses set aside before analysis: {reason}")
    results: dict = {
        "schema": SCHEMA,
        "n": {"participants": len(pkg.participants), "participants_analyzed": len(analysed),
              "responses": len(pkg.responses),
              "responses_analyzed": int(pkg.responses["participant_id"].isin(analysed).sum())},
        "exclusions": [{"participant_id": pid, "reason": row["reason"], "all_reasons": row["all_reasons"],
                        "culture_group": row["culture_group"]}
                       for pid, row in checks.iterrows() if row["reason"]],
        "exclusion_rules": vars(rules).copy(),
        "exclusion_flow": {step: row.to_dict() for step, row in flow.iterrows()},
        "study": {"slug": design.study.get("slug"), "title": design.study.get("title"),
                  "culture_groups": design.culture_groups, "match": design.match},
        "dropped_responses": dict(pkg.dropped),
        "notes": notes,
        "questions": {},
        "versions": versions(),
    }
    extras: dict = {"checks": checks, "flow": flow, "questions": {}}
    tables = {qid: long_table(pkg, qid) if q["kind"] in RATING_KINDS else choices.choice_table(pkg, qid)
              for qid, q in design.questions.items()}
    with _background(opts, design.questions, tables, analysed) as futures:
        waiting = []
        for qid, q in design.questions.items():
            question = _rating_question if q["kind"] in RATING_KINDS else _choice_question
            out, ex, finish = question(qid, q, tables[qid], analysed, opts, tick, futures.get(qid, {}))
            waiting.append(finish)
            results["questions"][qid] = out
            extras["questions"][qid] = ex
        for finish in waiting:
            finish()
    return results, extras


@contextmanager
def _background(opts: AnalysisOptions, questions: dict, tables: dict,
                analysed: set[str]) -> Iterator[dict[str, dict[str, Future]]]:
    """Start, in one background process (spawned: no forked BLAS threads), the fits whose results the main
    process needs for nothing else: the models without exclusions, then per rating question the z-score LMM
    and the Likert CLMM; hand out their futures by question. Without `background_clmm` everything runs in this
    process when its turn comes."""
    analysed_rows = {qid: t[t["participant"].isin(analysed)].reset_index(drop=True) for qid, t in tables.items()}
    futures: dict[str, dict[str, Future]] = {qid: {} for qid in questions}
    if not opts.background_clmm:
        yield futures
        return
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        with _environment(_ONE_THREAD):  # the worker starts with the first submit
            for qid, df in analysed_rows.items():
                if len(tables[qid]) > len(df):  # someone was excluded
                    fit = ((without_exclusions, tables[qid], questions[qid]) if questions[qid]["kind"] in RATING_KINDS
                           else (_glmm_or_skip, tables[qid]))
                    futures[qid]["without"] = pool.submit(*fit)
            for qid, df in analysed_rows.items():
                if questions[qid]["kind"] in RATING_KINDS and not df.empty:
                    futures[qid]["zscore"] = pool.submit(zscore_sensitivity, df)
                    if questions[qid]["kind"] == "likert":
                        futures[qid]["clmm"] = pool.submit(ordinal.clmm_match, df, opts.clmm_max_responses, opts.seed)
        yield futures


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
