"""Writes OUT/results.json (Contract 3) and OUT/report.html: one self-contained page that works offline
(plotly.js embedded once, inline; no CDN, no other file), UTF-8 so Chinese and English labels both render."""

from __future__ import annotations

import html
import json
import math
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from culturelab.analysis.result import fmt_p
from culturelab.analysis.summary import question_text, summary_html

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI","Noto Sans","Noto Sans CJK SC","PingFang SC",
"Microsoft YaHei",sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.9em}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f2f2f2} td.num{text-align:right;font-variant-numeric:tabular-nums}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.4em .8em;margin:.5em 0}
.skip{color:#a33} code{background:#f4f4f4;padding:0 3px} h2{border-bottom:2px solid #ddd;margin-top:2em}
details{margin:.5em 0}
"""


def _e(x: object) -> str:
    return html.escape(str(x))


def _num(x: object, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if isinstance(x, (int, np.integer)):
        return str(x)
    if isinstance(x, float) and abs(x) < 1e-3 and x != 0:
        return f"{x:.2e}"
    return f"{x:.{digits}f}"


def _p(p: object) -> str:
    """A p value the APA way: p < .001, else three decimals without the leading zero (e.g. .023)."""
    if p is None or not isinstance(p, (int, float)) or not math.isfinite(p):
        return "–"
    return fmt_p(float(p)).removeprefix("p ").removeprefix("= ")


def _ci(ci: list | None) -> str:
    return f"[{_num(ci[0])}, {_num(ci[1])}]" if ci and ci[0] is not None else "–"


def _table(headers: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(
        f"<td class='num'>{_e(_num(c))}</td>" if isinstance(c, (int, float, np.number)) and not isinstance(c, bool)
        else f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _labels(results: dict) -> dict[str, str]:
    out = {}
    for g in results["study"].get("culture_groups") or []:
        labels = list(dict.fromkeys(str(v) for v in (g.get("label") or {}).values() if v))
        out[g["id"]] = " / ".join(labels) if labels else g["id"]
    return out


def _title(results: dict) -> str:
    title = results["study"].get("title") or {}
    parts = list(dict.fromkeys(str(v) for v in title.values() if v)) if isinstance(title, dict) else [str(title)]
    return " / ".join(parts) or str(results["study"].get("slug") or "CultureLab study")


def _fig(fig: go.Figure) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False, "responsive": True})


def heatmap(descriptives: list[dict], match: dict, labels: dict, title: str) -> str:
    """Mean per participant group × stimulus culture; the in-group cells (the study's match) are outlined."""
    if not descriptives:
        return "<p>No data.</p>"
    d = pd.DataFrame(descriptives)
    grid = d.pivot(index="culture_group", columns="stimulus_culture", values="mean")
    rows, cols = list(grid.index), list(grid.columns)
    fig = go.Figure(go.Heatmap(z=grid.to_numpy(), x=cols, y=[labels.get(r, r) for r in rows], colorscale="Viridis",
                               text=np.vectorize(lambda v: "" if np.isnan(v) else f"{v:.2f}")(grid.to_numpy()),
                               texttemplate="%{text}", colorbar={"title": "mean"}))
    for i, g in enumerate(rows):
        for j, c in enumerate(cols):
            if c in match.get(g, []):
                fig.add_shape(type="rect", x0=j - 0.5, x1=j + 0.5, y0=i - 0.5, y1=i + 0.5,
                              line={"color": "red", "width": 3})
    fig.update_layout(title=f"{title} — in-group cells outlined in red", height=120 + 60 * len(rows),
                      xaxis_title="stimulus culture", yaxis_title="participant group", margin={"l": 160})
    return _fig(fig)


def distributions(means: pd.DataFrame, labels: dict, title: str) -> str:
    fig = go.Figure()
    for g, sub in means.groupby("culture_group", observed=True):
        fig.add_trace(go.Violin(y=sub["value"], name=labels.get(g, g), box_visible=True, points="all",
                                meanline_visible=True))
    fig.update_layout(title=f"{title}: per-participant mean rating by group", showlegend=False, height=380)
    return _fig(fig)


def bt_chart(rows: list[dict], labels: dict) -> str:
    d = pd.DataFrame(rows)
    fig = go.Figure()
    for g, sub in d.groupby("culture_group"):
        lo = sub["log_worth"] - sub["ci95"].map(lambda c: c[0])
        hi = sub["ci95"].map(lambda c: c[1]) - sub["log_worth"]
        fig.add_trace(go.Bar(x=sub["stimulus_culture"], y=sub["log_worth"], name=labels.get(g, g),
                             error_y={"type": "data", "array": hi, "arrayminus": lo}))
    fig.update_layout(title="Bradley–Terry log-worth per stimulus culture (95% bootstrap CI)", barmode="group",
                      height=380, yaxis_title="log-worth (centred)")
    return _fig(fig)


def _tests_table(tests: list[dict]) -> str:
    rows = []
    for t in tests:
        if t.get("skipped"):
            rows.append([t["name"], t["method"], "", "", "", "", "", "", "", f"not run: {t['skipped']}"])
            continue
        es = t.get("effect_size") or {}
        df = t.get("df")
        dfs = f"{_num(t.get('df_num'), 0)}, {_num(df, 1)}" if t.get("df_num") is not None else _num(df, 1)
        rows.append([t["name"], t["method"], _num(t.get("estimate")), _ci(t.get("ci95")), _num(t.get("statistic")),
                     dfs, _p(t.get("p")), _p(t.get("p_adjusted")),
                     f"{es.get('name', '')}: {_num(es.get('value'))} {_ci(es.get('ci95'))}", t.get("apa", "")])
    return _table(["test", "method", "estimate", "95% CI", "statistic", "df", "p", "p (Holm)", "effect size",
                   "APA"], rows)


def _model_table(m: dict) -> str:
    fixed = m.get("fixed", [])
    has_df = bool(fixed) and "df" in fixed[0]
    rows = [[r["term"], r["estimate"], r["se"], *([r["df"], r["t"]] if has_df else [r["z"]]), _p(r["p"]),
             _ci(r["ci95"])] for r in fixed]
    headers = ["term", "estimate", "SE", *(["df (Satterthwaite)", "t"] if has_df else ["z"]), "p", "95% CI"]
    out = f"<p><code>{_e(m['formula'])}</code>, n = {m.get('n_obs')}</p>" + _table(headers, rows)
    if m.get("variance_components"):
        out += _table(["variance component", "variance"], [[k, v] for k, v in m["variance_components"].items()])
    for n in m.get("notes") or []:
        out += f"<p class='note'>{_e(n)}</p>"
    return out


def _question_html(qid: str, q: dict, extras: dict, results: dict, labels: dict) -> str:
    parts = [f"<h2>{_e(question_text(qid, q))} <small><code>{_e(qid)}</code> ({_e(q['kind'])})</small></h2>",
             f"<p>{q.get('n_responses', 0)} responses from {q.get('n_participants', 0)} analysed participants.</p>",
             "<h3>Descriptives</h3>"]
    desc = q.get("descriptives", [])
    parts.append(_table(["group", "stimulus culture", "n", "mean", "SD", "95% CI"],
                        [[labels.get(d["culture_group"], d["culture_group"]), d["stimulus_culture"], d["n"],
                          d["mean"], d["sd"], _ci(d["ci95"])] for d in desc]))
    if q["kind"] != "choice":
        parts.append("<p>CI: t interval over participants' cell means.</p>")
    else:
        parts.append("<p>mean = share of trials on which an image of that culture was chosen when shown "
                     "(Wilson CI over trials).</p>")
    parts.append(heatmap(desc, results["study"].get("match") or {}, labels, qid))
    if "participant_means" in extras:
        parts.append(distributions(extras["participant_means"], labels, qid))
    parts.append("<h3>Main tests (analysed participants, after exclusions)</h3>" + _tests_table(q.get("tests", [])))
    if q.get("tests_without_exclusions"):
        parts.append("<h3>Same tests without exclusions (all participants)</h3>" +
                     _tests_table(q["tests_without_exclusions"]))
    for what, why in (q.get("tests_not_applicable") or {}).items():
        parts.append(f"<p class='note'>{_e(what)}: {_e(why)}</p>")
    if q.get("models"):
        parts.append("<h3>Model tables</h3>")
        for name, m in q["models"].items():
            parts.append(f"<h4>{_e(name)}</h4>" + _model_table(m))
    if q.get("nonparametric"):
        parts.append("<h3>Participant-level non-parametric tests</h3>" + _tests_table(q["nonparametric"]))
    if q.get("posthoc"):
        parts.append("<h4>Post-hoc: pairwise Mann–Whitney U, Holm-adjusted (multipletests method='holm')</h4>")
        parts.append(_table(["group A", "group B", "n A", "n B", "U", "p", "p (Holm)", "Cliff's δ", "δ 95% CI"],
                            [[labels.get(r["group_a"], r["group_a"]), labels.get(r["group_b"], r["group_b"]),
                              r["n_a"], r["n_b"], r["U"], _p(r["p"]), _p(r["p_holm"]), r["cliffs_delta"],
                              _ci(r["cliffs_delta_ci95"])] for r in q["posthoc"]]))
    if q.get("reliability"):
        parts.append("<h3>Reliability</h3>")
        parts.append(_table(
            ["group", "participants", "Krippendorff's α", "α 95% CI (bootstrap over stimuli)", "level",
             "split-half (Spearman–Brown)", "range over splits"],
            [[labels.get(r["culture_group"], r["culture_group"]), r["n_participants"], r["krippendorff_alpha"],
              _ci(r["krippendorff_alpha_ci95"]), r["alpha_level"], r["split_half"]["spearman_brown"],
              _ci(r["split_half"]["split_range95"])]
             for r in q["reliability"]]))
    if q.get("sensitivity"):
        parts.append("<h3>Sensitivity analyses of the in-group preference</h3>" + _tests_table(q["sensitivity"]))
        for s in q["sensitivity"]:
            if s.get("subsample"):
                parts.append(f"<p class='note'>Ordinal model: {_e(s['subsample'])}.</p>")
    if q.get("bradley_terry"):
        parts.append("<h3>Bradley–Terry worth (choix)</h3>")
        parts.append(_table(["group", "stimulus culture", "log-worth", "95% CI (bootstrap)"],
                            [[labels.get(r["culture_group"], r["culture_group"]), r["stimulus_culture"],
                              r["log_worth"], _ci(r["ci95"])] for r in q["bradley_terry"]]))
        parts.append(bt_chart(q["bradley_terry"], labels))
    return "\n".join(parts)


def render_html(results: dict, extras: dict) -> str:
    labels = _labels(results)
    title = _title(results)
    n = results["n"]
    flow = results.get("exclusion_flow", {})
    flow_cols = list(next(iter(flow.values())).keys()) if flow else []
    parts = [f"<h1>{_e(title)}</h1>",
             f"<p>CultureLab analysis, {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}; "
             f"results schema <code>{_e(results['schema'])}</code>.</p>"]
    parts.append(summary_html(results))
    parts.append("<h2>Sample and exclusions</h2>")
    parts.append(f"<p>{n['participants']} participants exported, {n['participants_analyzed']} analysed; "
                 f"{n['responses']} responses in the export.</p>")
    rules = ", ".join(f"{k} = {v}" for k, v in results.get("exclusion_rules", {}).items())
    parts.append(f"<p>Exclusion rules (pre-registered; applied in the order of the table): {_e(rules)}</p>")
    parts.append(_table(["step", *[labels.get(c, c) for c in flow_cols]],
                        [[step, *[row[c] for c in flow_cols]] for step, row in flow.items()]))
    ex = results.get("exclusions", [])
    parts.append(f"<details><summary>All {len(ex)} excluded participants with their reasons</summary>" +
                 _table(["participant", "group", "reason", "all reasons broken"],
                        [[e["participant_id"], labels.get(e["culture_group"], e["culture_group"]), e["reason"],
                          ", ".join(e["all_reasons"])] for e in ex]) + "</details>")
    if results.get("dropped_responses"):
        parts.append(_table(["responses set aside", "count"], list(map(list, results["dropped_responses"].items()))))
    for qid, q in results["questions"].items():
        parts.append(_question_html(qid, q, extras.get("questions", {}).get(qid, {}), results, labels))
    methods = "".join(f"<li>{_e(m)}</li>" for m in METHODS)
    parts.append(f"<h2>Methods: what produced each number</h2><ul>{methods}</ul>")
    versions = [[k, v] for k, v in results["versions"].items()]
    parts.append("<h2>Package versions</h2>" + _table(["package", "version"], versions))
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{_e(title)}</title>"
            f"<style>{CSS}</style><script>{get_plotlyjs()}</script></head><body>\n" + "\n".join(parts) +
            "\n</body></html>\n")


METHODS = [
    "in_group_preference (Likert, slider): the match coefficient of value ~ match + culture_group + stimulus_culture "
    "+ (1|participant) + (1|stimulus) + (1|stimulus:culture_group) + (1|participant:stimulus_culture), REML, mixedlm "
    "lmer; the two combination intercepts let a stimulus appeal differently to each group and a participant like one "
    "culture more than others do, without which the test's type-I error is far above 5% (Barr et al., 2013). Rule: "
    "a combination the design cannot separate is left out, one whose variance is estimated at zero (singular fit) is "
    "dropped and the model refitted; the two plain intercepts always stay (Bates et al., 2015). t test and CI with "
    "Satterthwaite df (mixedlm satterthwaite_df). d = b / SD over all variance components (Westfall, Kenny & Judd, "
    "2014); its CI (delta method) includes the uncertainty of that SD.",
    "participant_culture, stimulus_culture: joint Wald F tests of the factor's coefficients in that model; "
    "culture_interaction: joint F test of all culture_group:stimulus_culture terms in the full-factorial model. "
    "Denominator df: lmerTest's multi-df Satterthwaite method computed from mixedlm's covariance derivatives. "
    "Partial η² from F, CI by noncentral-F inversion. p (Holm): Holm across the question's tests.",
    "in_group_preference (choice): intercept of a mixed logistic model chose_own ~ own_right + appeal[culture] + "
    "(1|participant) + (1|own_stimulus) (mixedlm glmer, Laplace), Wald z; trials where exactly one image is of the "
    "participant's group's culture; own_right = ±0.5 adjusts for left/right position, the Bradley–Terry appeal terms "
    "(+1 own image's culture, −1 the other's) for how much everyone likes each culture. Sensitivity: the same "
    "label-permutation test as for ratings on own-culture choice rates less the whole sample's rate for that pair "
    "of cultures.",
    "Sensitivity (all adjusted for stimulus culture): the same LMM on within-participant z-scores; the Likert CLMM "
    "(logit, Laplace approximation as R ordinal::clmm, culturelab's exact-gradient fit checked against interlace-lme "
    "clmm) with (1|participant) + (1|stimulus:culture_group), Wald z, on a stated subsample of whole participants "
    "stratified by culture group when large; a permutation test of the culture-group labels on each "
    "participant's own − other culture difference less the whole sample's (bootstrap CI; generalises over "
    "participants, not stimuli).",
    "Kruskal–Wallis on per-participant means (ε² = H/(n−1), participant bootstrap CI); pairwise Mann–Whitney U with "
    "Holm correction and Cliff's δ (bootstrap CI).",
    "Bradley–Terry log-worth per stimulus culture and group: choix ilsr_pairwise_dense (alpha = 0.01), centred; "
    "CI: percentile bootstrap over participants.",
    "Reliability: Krippendorff's α (krippendorff package; ordinal for Likert, interval for sliders) with participants "
    "as raters and stimuli as units, 95% CI by percentile bootstrap over stimuli; split-half: random participant "
    "halves, correlation of stimulus means, "
    "Spearman–Brown corrected, mean and 2.5–97.5% range over 200 splits.",
]


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def write_outputs(results: dict, extras: dict, out: str | Path) -> tuple[Path, Path]:
    """Write results.json and report.html (each written whole, then moved into place: nothing half-written)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    page = render_html(results, extras)
    doc = json.dumps(_clean(results), ensure_ascii=False, indent=2, allow_nan=False)
    _atomic_write(out / "results.json", doc + "\n")
    _atomic_write(out / "report.html", page)
    return out / "results.json", out / "report.html"


def _clean(x: object) -> object:
    """JSON-ready: numpy scalars to Python, NaN/inf to null (JSON has no NaN)."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(float(x)) else None
    if x is None or isinstance(x, str):
        return x
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")
