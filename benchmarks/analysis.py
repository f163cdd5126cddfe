"""Benchmark: the full `culturelab analyze` pipeline on 1,000 participants × 60 Likert responses
(+ 10 choice trials and 2 attention checks each), from a simulated Contract 2 package.

Prints one JSON object: wall and CPU seconds of load + analysis + report (simulation excluded), seconds per
analysis step, and peak resident memory (resource.getrusage ru_maxrss) of this process and, separately, of
the background process that fits the CLMM (CPU and memory of both are reported; they add up at most).

    python3 benchmarks/analysis.py [--participants 1000] [--likert 60] [--choice 10]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from culturelab.analysis.analyze import AnalysisOptions, run_analysis
from culturelab.analysis.load import load_package
from culturelab.analysis.report import write_outputs
from culturelab.analysis.simulate import DEFAULT_GROUPS, SimulationOptions, simulate, write_package

GROUPS = [*DEFAULT_GROUPS, {"id": "middle_eastern", "label": {"en": "Middle Eastern", "zh": "中东"}}]
MATCH = {"east_asian": ["seigaiha"], "west_african": ["kente"], "european": ["meander"], "middle_eastern": ["girih"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--participants", type=int, default=1000)
    ap.add_argument("--likert", type=int, default=60)
    ap.add_argument("--choice", type=int, default=10)
    ap.add_argument("--stimuli-per-culture", type=int, default=20)
    args = ap.parse_args()
    opts = SimulationOptions(groups=GROUPS, match=MATCH, participants_per_group=args.participants // len(GROUPS),
                             stimuli_per_culture=args.stimuli_per_culture, likert_trials=args.likert,
                             slider_trials=0, choice_trials=args.choice, style_shift=[0.0, 0.4, -0.3, 0.1],
                             style_scale=[1.0, 1.3, 0.8, 1.1], seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        tables, meta = simulate(opts)
        write_package(tables, meta, Path(tmp) / "pkg")
        del tables
        steps: dict[str, float] = {}
        last = [time.perf_counter()]
        # run_analysis ticks when a step starts (the first tick, "exclusions", when they end): the time up to
        # the next tick is the step's own
        current = ["exclusions"]

        def tick(step: str) -> None:
            now = time.perf_counter()
            steps[current[0]] = round(now - last[0], 2)
            current[0] = "question tables, background start" if step == "exclusions" else step
            last[0] = now

        wall, cpu = time.perf_counter(), time.process_time()
        pkg = load_package(Path(tmp) / "pkg")
        steps["load"] = round(time.perf_counter() - wall, 2)
        last[0] = time.perf_counter()
        results, extras = run_analysis(pkg, opts=AnalysisOptions(), progress=tick)
        tick("end")  # the last step's time includes waiting for the background process to finish
        t_report = time.perf_counter()
        write_outputs(results, extras, Path(tmp) / "out")
        steps["write report.html + results.json"] = round(time.perf_counter() - t_report, 2)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        html_mb = (Path(tmp) / "out" / "report.html").stat().st_size / 2**20
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: kilobytes
    child = resource.getrusage(resource.RUSAGE_CHILDREN)  # the background CLMM process
    clmm = next(s for s in results["questions"]["liking"]["sensitivity"] if "CLMM" in s["method"])
    print(json.dumps({
        "benchmark": "analysis", "participants": results["n"]["participants"],
        "participants_analyzed": results["n"]["participants_analyzed"], "responses": results["n"]["responses"],
        "likert_responses_in_lmm": results["questions"]["liking"]["models"]["main"]["n_obs"],
        "seconds_wall": round(wall, 1), "seconds_cpu": round(cpu, 1), "peak_rss_mb": round(peak_kb / 1024, 1),
        "child_seconds_cpu": round(child.ru_utime + child.ru_stime, 1),
        "child_peak_rss_mb": round(child.ru_maxrss / 1024, 1),
        "report_html_mb": round(html_mb, 2), "clmm_responses": clmm["n_responses"],
        "clmm_participants": clmm["n_participants"], "clmm_fit_seconds": clmm["seconds"],
        "cpus": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2),
        "python": sys.version.split()[0], "steps_seconds": steps,
    }))


if __name__ == "__main__":
    main()
