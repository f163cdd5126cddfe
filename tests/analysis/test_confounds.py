"""Issue 9's acceptance test: on a null package where a culture nobody owns is liked 0.7 SD less by everyone,
no test named `in_group_preference` anywhere in results.json rejects at p < .01 — while the unadjusted
own − other comparison the old signed-rank test made is fooled by the same data."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from scipy import stats

from culturelab.analysis.load import load_package, long_table
from culturelab.analysis.simulate import SimulationOptions, simulate, write_package
from culturelab.platform.cli import main

NULL_DISLIKED = SimulationOptions(ingroup_d=0.0, unowned={"girih": -0.7}, participants_per_group=30, seed=5)


def _in_group_tests(results: dict) -> list[tuple[str, str, dict]]:
    found = []
    for qid, q in results["questions"].items():
        for key in ("tests", "tests_without_exclusions", "sensitivity", "nonparametric"):
            found += [(qid, key, t) for t in q.get(key, []) if t["name"] == "in_group_preference"]
    return found


@pytest.mark.slow
def test_no_in_group_test_rejects_on_a_null_package_with_a_culture_everyone_dislikes(tmp_path):
    tables, meta = simulate(NULL_DISLIKED)
    pkg = write_package(tables, meta, tmp_path / "pkg")
    d = long_table(load_package(pkg), "liking")
    own = d.groupby(["participant", "match"])["value"].mean().unstack()
    assert stats.wilcoxon(own[1] - own[0]).pvalue < 0.001  # the data would fool an unadjusted own − other test
    result = CliRunner().invoke(main, ["analyze", str(pkg), "--out", str(tmp_path / "out"),
                                       "--clmm-max-responses", "300"])
    assert result.exit_code == 0, result.output
    found = _in_group_tests(json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8")))
    ran = [(q, key, t["method"][:40], t["p"]) for q, key, t in found if not t.get("skipped")]
    # LMM (with and without exclusions), z-score LMM, CLMM, permutation: likert; the same less CLMM: slider;
    # GLMM (with, without) and permutation: choice
    assert len(ran) == 5 + 4 + 3, ran
    assert all(p >= 0.01 for *_, p in ran), ran
