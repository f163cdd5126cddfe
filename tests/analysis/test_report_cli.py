"""`culturelab analyze` end to end: results.json follows Contract 3, report.html is one offline file."""

from __future__ import annotations

import json
import re
from dataclasses import replace

from click.testing import CliRunner
from plotly.offline import get_plotlyjs

from culturelab.analysis.simulate import DEFAULT_GROUPS
from culturelab.platform.cli import main

TEST_NAMES = {"in_group_preference", "participant_culture", "stimulus_culture", "culture_interaction"}
TEST_KEYS = {"name", "method", "estimate", "ci95", "statistic", "df", "p", "p_adjusted", "effect_size", "apa"}


def test_results_json_follows_contract_3(analysed):
    results, _, _ = analysed
    assert results["schema"] == "culturelab.results/1"
    n = results["n"]
    assert {"participants", "participants_analyzed", "responses"} <= set(n)
    assert n["participants"] == 36 and 0 < n["participants_analyzed"] < 36
    assert len(results["exclusions"]) == n["participants"] - n["participants_analyzed"]
    assert {e["reason"] for e in results["exclusions"]} <= {"attention", "too_fast", "straightlining", "incomplete"}
    assert set(results["questions"]) == {"liking", "beauty", "preference"}
    for qid, q in results["questions"].items():
        assert q["descriptives"], qid
        for d in q["descriptives"]:
            assert {"culture_group", "stimulus_culture", "n", "mean", "sd", "ci95"} <= set(d)
        for t in q["tests"] + q["tests_without_exclusions"]:
            assert TEST_KEYS <= set(t) and t["name"] in TEST_NAMES
            assert {"name", "value"} <= set(t["effect_size"])
    for qid in ("liking", "beauty"):
        names = [t["name"] for t in results["questions"][qid]["tests"]]
        assert names == ["in_group_preference", "participant_culture", "stimulus_culture", "culture_interaction"]
    ing = results["questions"]["beauty"]["tests"][0]
    assert ing["estimate"] > 0 and ing["ci95"][0] < ing["estimate"] < ing["ci95"][1]
    apa = r"b = -?\d+\.\d\d, 95% CI \[.*\], t\(\d+(\.\d)?\) = .*, p [=<] \.\d{3}, d = -?\d\.\d\d"
    assert re.fullmatch(apa, ing["apa"])
    kw = results["questions"]["liking"]["nonparametric"][0]
    assert re.fullmatch(r"H\(2\) = \d+\.\d\d, p [=<] \.\d{3}, ε² = -?\.\d\d", kw["apa"])


def test_every_main_result_is_reported_with_and_without_exclusions(analysed):
    results, page, _ = analysed
    q = results["questions"]["liking"]
    with_ex, without = q["tests"][0], q["tests_without_exclusions"][0]
    assert with_ex["estimate"] != without["estimate"]
    assert "Same tests without exclusions" in page


def test_sensitivity_reliability_and_choice_layers_are_present(analysed):
    results, _, _ = analysed
    liking = results["questions"]["liking"]
    methods = " | ".join(s["method"] for s in liking["sensitivity"])
    assert "z-scored" in methods and "CLMM" in methods and "permutation" in methods
    assert all("adjusted for stimulus culture" in s["method"] or "stimulus_culture" in s["method"]
               for s in liking["sensitivity"])
    clmm = next(s for s in liking["sensitivity"] if "CLMM" in s["method"])
    assert "subsample" in clmm["subsample"] and clmm["n_responses"] <= 150  # stated, not skipped silently
    assert {r["alpha_level"] for r in liking["reliability"]} == {"ordinal"}
    assert all("p_holm" in r for r in liking["posthoc"])
    pref = results["questions"]["preference"]
    assert pref["tests"][0]["name"] == "in_group_preference" and "glmer" in pref["tests"][0]["method"]
    assert {r["stimulus_culture"] for r in pref["bradley_terry"]} == {"seigaiha", "kente", "meander"}
    assert results["versions"]["mixedlm"] and results["versions"]["choix"]


def test_report_is_self_contained_and_renders_both_languages(analysed):
    _, page, out = analysed
    assert page.count(get_plotlyjs()) == 1  # plotly.js embedded once, inline
    ours = page.replace(get_plotlyjs(), "")
    assert not re.search(r"<script[^>]*\bsrc=", ours) and not re.search(r"<link[^>]*\bhref=", ours)
    assert "https://" not in ours and "http://" not in ours  # nothing is fetched from the network
    assert "<meta charset='utf-8'>" in page
    assert "East Asian / 东亚" in page and "模拟图案偏好" in page
    assert "in-group cells outlined" in page and "Kruskal" in page and "Krippendorff" in page
    assert "Package versions" in page and "excluded: straightlining" in page
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "results.json"]


def test_single_culture_group_and_empty_groups_are_stated_not_crashed(tmp_path, make_pkg, small_opts):
    opts = replace(small_opts, groups=small_opts.groups[:1], likert_trials=0, participants_per_group=10)
    pkg = make_pkg(tmp_path / "one", opts)
    desc = json.loads((pkg / "datapackage.json").read_text())
    desc["culturelab"]["culture_groups"] = DEFAULT_GROUPS  # declared, but nobody from two of them took part
    (pkg / "datapackage.json").write_text(json.dumps(desc, ensure_ascii=False))
    result = CliRunner().invoke(main, ["analyze", str(pkg), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert any("'west_african' has no analysed participants" in n for n in results["notes"])
    tests = {t["name"]: t for t in results["questions"]["beauty"]["tests"]}
    assert "two or more culture groups" in tests["participant_culture"]["skipped"]
    assert tests["stimulus_culture"]["p"] is not None
    page = (tmp_path / "out" / "report.html").read_text()
    assert "not run: needs two or more culture groups" in page


def test_parquet_export_analyses_like_csv(tmp_path, make_pkg, small_opts):
    opts = replace(small_opts, likert_trials=0, choice_trials=0, participants_per_group=8)
    runner = CliRunner()
    outs = {}
    for fmt in ("csv", "parquet"):
        pkg = make_pkg(tmp_path / fmt, opts, fmt)
        assert runner.invoke(main, ["analyze", str(pkg), "--out", str(tmp_path / f"o-{fmt}")]).exit_code == 0
        outs[fmt] = json.loads((tmp_path / f"o-{fmt}" / "results.json").read_text())
    assert outs["csv"]["questions"]["beauty"]["tests"] == outs["parquet"]["questions"]["beauty"]["tests"]


def test_simulate_data_cli_writes_contract_2(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["simulate-data", "--out", str(tmp_path / "sim"), "--participants-per-group", "3",
                                  "--format", "parquet", "--seed", "4"])
    assert result.exit_code == 0, result.output
    desc = json.loads((tmp_path / "sim" / "datapackage.json").read_text())
    names = [r["name"] for r in desc["resources"]]
    assert names == ["participants", "stimuli", "responses"] and desc["resources"][0]["path"] == "participants.parquet"
    fields = [f["name"] for f in desc["resources"][2]["schema"]["fields"]]
    assert fields == ["response_id", "participant_id", "trial_index", "trial_kind", "question_id", "stimulus_id",
                      "stimulus_id_b", "value", "correct", "rt_ms", "created_at", "hidden_ms"]
    assert all(f.get("description") and f.get("type") for r in desc["resources"] for f in r["schema"]["fields"])
    assert set(desc["culturelab"]) == {"match", "questions", "culture_groups", "study"}
    again = runner.invoke(main, ["simulate-data", "--out", str(tmp_path / "sim")])
    assert again.exit_code == 2 and "not an empty folder" in again.stderr


def test_power_cli_prints_a_table_and_writes_json(tmp_path):
    result = CliRunner().invoke(main, ["power", "--participants-per-group", "6", "--stimuli-per-culture", "3",
                                       "--effect", "0,1.5", "--kind", "slider", "--nsim", "12",
                                       "--out", str(tmp_path / "power.json")])
    assert result.exit_code == 0, result.output
    cells = json.loads((tmp_path / "power.json").read_text())["cells"]
    null, strong = cells
    assert null["effect_d"] == 0 and strong["effect_d"] == 1.5
    assert strong["power"] >= 0.9 and null["power"] <= 0.35
    assert strong["power_ci95"][0] <= strong["power"] <= strong["power_ci95"][1]
    bad = CliRunner().invoke(main, ["power", "--participants-per-group", "ten"])
    assert bad.exit_code == 2


def test_when_rules_exclude_everyone_the_results_say_so_and_keep_the_unexcluded_tests(tmp_path, small_package):
    rules = tmp_path / "rules.yaml"
    rules.write_text("rt_floor_ms: 100000\n")
    result = CliRunner().invoke(main, ["analyze", str(small_package), "--out", str(tmp_path / "out"),
                                       "--exclusions", str(rules)])
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["n"]["participants_analyzed"] == 0
    assert len(results["exclusions"]) == results["n"]["participants"]
    beauty = results["questions"]["beauty"]
    assert all(t["skipped"] == "no analysed responses to this question" for t in beauty["tests"])
    assert beauty["tests_without_exclusions"][0]["p"] is not None
    assert results["questions"]["preference"]["tests"][0]["skipped"]


def test_participants_without_a_culture_group_are_counted(tmp_path, make_pkg, small_opts, edit_csv):
    opts = replace(small_opts, likert_trials=0, choice_trials=0, participants_per_group=6, incomplete_fraction=0.3)
    pkg = make_pkg(tmp_path / "pkg", opts)
    blanked = []

    def blank(d):
        rows = d.index[d["status"] == "started"][:2]
        blanked.extend(d.loc[rows, "participant_id"])
        d.loc[rows, "culture_group"] = ""
        return d

    edit_csv(pkg / "participants.csv", blank)
    assert len(blanked) == 2
    result = CliRunner().invoke(main, ["analyze", str(pkg), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert any(n.startswith("2 participants never chose a culture group") for n in results["notes"])
    reasons = {e["participant_id"]: e["reason"] for e in results["exclusions"]}
    assert all(reasons[p] == "incomplete" for p in blanked)


def test_report_opens_with_the_answer_in_the_study_language_and_apa_p_values(analysed):
    results, page, _ = analysed
    summary = page.index("<section id='summary'>")
    assert summary < page.index("<table")  # the answer comes before any table
    opening = page[summary:page.index("</section>", summary)]
    assert "你有多喜欢这个图案?" in opening and "How much do you like this pattern?" in opening
    assert "95% CI" in opening and "analysed after the pre-registered exclusions" in opening
    assert "Participants rated images of their own group" in opening
    assert not re.search(r"\d\.\d+e-\d", page.replace(get_plotlyjs(), ""))  # no e-notation anywhere
    assert "< .001" in page or re.search(r">\.\d{3}<", page)


def test_without_exclusions_tables_only_when_someone_was_excluded(tmp_path, make_pkg, small_opts):
    opts = replace(small_opts, likert_trials=0, participants_per_group=8, careless_fraction=0.0,
                   attention_fail_fraction=0.0, incomplete_fraction=0.0)
    pkg = make_pkg(tmp_path / "clean", opts)
    result = CliRunner().invoke(main, ["analyze", str(pkg), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["exclusions"] == []
    assert all(q["tests_without_exclusions"] == [] for q in results["questions"].values())
    assert "without exclusions" not in (tmp_path / "out" / "report.html").read_text()


def test_a_separated_choice_model_is_stated_not_crashed():
    """Few choices per participant can separate the logistic model: exp(estimate) overflows and the odds
    ratio's interval has no upper end (seen in the demo with 12 bots); the summary says so."""
    from culturelab.analysis.summary import summary_html

    separated = {
        "kind": "choice", "text": {"en": "Which version?"}, "n_participants": 12, "n_responses": 60,
        "tests": [{"name": "in_group_preference", "method": "mixed logistic model", "estimate": 47.47,
                   "ci95": [-23378.6, 23473.5], "p": 0.9968,
                   "effect_size": {"name": "odds ratio", "value": 4.1e20, "ci95": [0.0, None]}}],
    }
    results = {"n": {"participants": 13, "participants_analyzed": 12}, "questions": {"same_scene": separated}}
    page = summary_html(results)
    assert "no finite odds ratio" in page and "log-odds 47.5" in page
    separated["tests"][0]["effect_size"]["ci95"] = [0.0, float("inf")]
    assert "no finite odds ratio" in summary_html(results)
