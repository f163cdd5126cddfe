"""The report's opening: per question, the in-group answer in plain words with its CI, the sample after
exclusions and the warnings that matter, before any table (issue 9: the answer sat 1,500 px down the page)."""

from __future__ import annotations

import html
import math
from collections import Counter

from culturelab.analysis.result import fmt_p


def question_text(qid: str, q: dict) -> str:
    """The question as participants read it, in every language of the study, or its id when the package
    does not carry the text."""
    text = q.get("text")
    if isinstance(text, dict):
        parts = list(dict.fromkeys(str(v) for v in text.values() if v))
        if parts:
            return " / ".join(parts)
    return str(text) if text else qid


def _units(q: dict) -> str:
    scale = q.get("scale") or {}
    if q["kind"] == "slider":
        return "points on the 0–100 slider"
    return f"points on the {scale.get('min')}–{scale.get('max')} scale"


def _answer(q: dict) -> str:
    t = (q.get("tests") or [{}])[0]
    if t.get("skipped") or t.get("estimate") is None:
        return f"The in-group test could not run: {t.get('skipped', 'no result')}."
    b, (lo, hi), p = t["estimate"], t["ci95"], t["p"]
    if q["kind"] == "choice":
        odds, (olo, ohi) = t["effect_size"]["value"], t["effect_size"]["ci95"]
        if not all(v is not None and math.isfinite(v) for v in (odds, olo, ohi)):  # separated on too few choices
            return (f"The in-group test has no finite odds ratio: the choices separate the model (log-odds {b:.1f}, "
                    f"95% CI {lo:.0f} to {hi:.0f}; {fmt_p(p)}), as happens with few answers per participant or "
                    "image; more data are needed before this question says anything.")
        what = (f"Participants chose the image of a culture their group owns at {odds:.2f} times the odds that the "
                f"two cultures' appeal to everyone predicts (95% CI {olo:.2f} to {ohi:.2f}; {fmt_p(p)}).")
    else:
        direction = "higher" if b > 0 else "lower"
        what = (f"Participants rated images of their own group's cultures {abs(b):.2f} {_units(q)} {direction} than "
                f"the other groups rated the same cultures, beyond each group's and each culture's overall level "
                f"(95% CI {lo:.2f} to {hi:.2f}; {fmt_p(p)}).")
        d = t.get("effect_size") or {}
        if d.get("value") is not None and d.get("ci95"):
            lo_d, hi_d = d["ci95"]
            what += f" As a standardized effect, d = {d['value']:.2f} (95% CI {lo_d:.2f} to {hi_d:.2f})."
    if lo <= 0 <= hi:
        what += " The interval includes zero: these data do not show an in-group preference."
    elif p < 0.05:
        what += " The interval excludes zero: an in-group " + ("preference." if b > 0 else "aversion.")
    return what


def _warnings(q: dict) -> list[str]:
    out = []
    t = (q.get("tests") or [{}])[0]
    if t.get("simplification"):
        out.append("Random effects simplified by the pre-registered rule: " + "; ".join(t["simplification"]) +
                   ". A variance estimated at zero (a singular fit) means the data show no such variation; "
                   "dropping it leaves the estimate unchanged.")
    for note in (q.get("models") or {}).get("main", {}).get("notes", []):
        if "singular" in note:
            out.append(note[0].upper() + note[1:] + ".")
    head_sig = t.get("p") is not None and t["p"] < 0.05
    sens = [s for s in q.get("sensitivity", []) if s.get("name") == "in_group_preference" and not s.get("skipped")]
    disagree = [s for s in sens if (s["p"] < 0.05) != head_sig or
                (s.get("estimate") is not None and t.get("estimate") is not None and s["p"] < 0.05 and
                 (s["estimate"] > 0) != (t["estimate"] > 0))]
    if disagree:
        out.append(f"{len(disagree)} of {len(sens)} sensitivity analyses disagree with the main test at p < .05: " +
                   "; ".join(s["method"].split(":")[0].split(";")[0] + f" ({fmt_p(s['p'])})" for s in disagree) + ".")
    for s in q.get("sensitivity", []):
        if s.get("skipped"):
            out.append(f"Not run: {s['method'].split(';')[0]}: {s['skipped']}.")
        elif s.get("subsample"):
            out.append(f"Ordinal model {s['subsample']}.")
    return out


def summary_html(results: dict) -> str:
    n = results["n"]
    reasons = Counter(e["reason"] for e in results.get("exclusions", []))
    excluded = ", ".join(f"{k} {v}" for k, v in reasons.items()) or "nobody"
    parts = ["<section id='summary'><h2>Summary</h2>",
             f"<p><b>Sample:</b> {n['participants_analyzed']} of {n['participants']} participants analysed after the "
             f"pre-registered exclusions (excluded: {html.escape(excluded)}).</p>"]
    for note in results.get("notes", []):
        parts.append(f"<p class='note'>{html.escape(note)}</p>")
    for qid, q in results["questions"].items():
        parts.append(f"<h3>{html.escape(question_text(qid, q))} <small><code>{html.escape(qid)}</code> "
                     f"({html.escape(q['kind'])})</small></h3>")
        parts.append(f"<p>{q.get('n_participants', 0)} participants, {q.get('n_responses', 0)} answers.</p>")
        parts.append(f"<p><b>{html.escape(_answer(q))}</b></p>")
        t = (q.get("tests") or [{}])[0]
        if t.get("method"):
            parts.append(f"<p>Model: {html.escape(t['method'])}.</p>")
        parts += [f"<p class='note'>{html.escape(w)}</p>" for w in _warnings(q)]
    parts.append("</section>")
    return "\n".join(parts)
