"""Evaluation: the estimators against known answers, and a whole evaluation of a tiny checkpoint."""

from __future__ import annotations

import numpy as np
import pytest

from culturelab.generation.evaluate import evaluate, fid, kid, mean_pairwise_distance


def test_fid_and_kid_are_near_zero_for_one_distribution_and_grow_with_a_shift():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(600, 8)), rng.normal(size=(600, 8))
    assert abs(kid(a, b, subsets=10, subset_size=300)) < 0.01
    assert fid(a, b) < 0.2
    assert kid(a, b + 1.0, subsets=10, subset_size=300) > 0.1
    # FID of two Gaussians with equal covariance is the squared distance of the means: 8 x 1^2.
    assert fid(a, b + 1.0) == pytest.approx(8.0, rel=0.1)


def test_mean_pairwise_distance_by_hand():
    x = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 4.0]])
    assert mean_pairwise_distance(x) == pytest.approx((5 + 3 + 4) / 3)


def test_evaluate_tiny_checkpoint_and_reuse_its_classifier(tiny_generator):
    results = evaluate(tiny_generator, "motifs", per_culture=10)
    assert results["per_culture"] == 10 and results["n_real"] == 50
    summary = results["summary"]
    per = results["per_culture_results"]
    assert set(per) == {"seigaiha", "girih", "kente", "meander", "ice_ray"}
    # the summary is the per-culture figures put together: every culture has 10 samples, so overall accuracy is
    # their mean, and the diversity ratio is the worst culture's
    assert summary["culture_accuracy"] == pytest.approx(np.mean([p["accuracy"] for p in per.values()]))
    assert summary["diversity_ratio"] == min(p["diversity_generated"] / p["diversity_real"] for p in per.values())
    kept = tiny_generator.parent / "generator.classifier-motifs-s0-n10-32px.safetensors"
    # paths relative to the results' folder (by default the checkpoint's), never absolute
    assert results["classifier"]["path"] == kept.name and kept.exists()
    assert results["checkpoint"] == "generator.safetensors" and results["resolution"] == 32
    mtime = kept.stat().st_mtime_ns
    again = evaluate(tiny_generator, "motifs", per_culture=10)
    assert kept.stat().st_mtime_ns == mtime  # reused, not retrained
    assert again["summary"] == summary
    elsewhere = evaluate(tiny_generator, "motifs", per_culture=10, report_dir=tiny_generator.parent / "reports")
    assert (
        elsewhere["checkpoint"] == "../generator.safetensors" and elsewhere["classifier"]["path"] == "../" + kept.name
    )
