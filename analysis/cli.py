"""`culturelab analyze`, `culturelab power`, `culturelab simulate-data` (loaded lazily by platform/cli.py).

Bad input ends with one line on stderr and exit code 2; nothing is written before the analysis is done.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import click
from tqdm import tqdm

from culturelab.analysis.exclusions import ExclusionConfigError, ExclusionRules
from culturelab.analysis.load import DataPackageError


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(2)


def _ints(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of integers") from None
    if not values or min(values) < 1:
        raise click.BadParameter(f"{text!r}: give positive integers, e.g. 20,40")
    return values


def _floats(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of numbers") from None
    if not values:
        raise click.BadParameter("give at least one value")
    return values


@click.command()
@click.argument("export_dir", type=click.Path(path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="Folder for report.html + results.json.")
@click.option("--exclusions", "exclusions", type=click.Path(path_type=Path), default=None,
              help="YAML or JSON file of exclusion rule options (defaults: docs/analysis.md).")
@click.option("--clmm-max-responses", default=600, show_default=True, type=click.IntRange(min=50),
              help="Above this many Likert responses the ordinal model runs on a stated participant subsample.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for bootstraps and subsamples.")
def analyze(export_dir: Path, out: Path, exclusions: Path | None, clmm_max_responses: int, seed: int) -> None:
    """Analyse an export data package (Contract 2): writes OUT/report.html and OUT/results.json."""
    from culturelab.analysis.analyze import AnalysisOptions, run_analysis, steps
    from culturelab.analysis.load import load_package
    from culturelab.analysis.report import write_outputs

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if out.exists() and not out.is_dir():
        _fail(f"--out {out} exists and is not a folder")
    try:
        rules = ExclusionRules.from_file(exclusions) if exclusions else ExclusionRules()
        pkg = load_package(export_dir)
    except (DataPackageError, ExclusionConfigError) as exc:
        _fail(str(exc))
    opts = AnalysisOptions(clmm_max_responses=clmm_max_responses, seed=seed)
    with tqdm(total=steps(pkg), desc="analysis", unit="step") as bar:
        def tick(step: str) -> None:
            bar.set_postfix_str(step[:60])
            bar.update(1)

        results, extras = run_analysis(pkg, rules, opts, tick)
    json_path, html_path = write_outputs(results, extras, out)
    click.echo(f"wrote {html_path} and {json_path}: {results['n']['participants_analyzed']} of "
               f"{results['n']['participants']} participants analysed")


@click.command()
@click.option("--participants-per-group", default="20,40", show_default=True, help="Comma-separated sizes.")
@click.option("--stimuli-per-culture", default="8", show_default=True, help="Comma-separated sizes.")
@click.option("--effect", default="0.2", show_default=True, help="Planted in-group effects d, comma-separated.")
@click.option("--trials", type=click.IntRange(min=1), default=None,
              help="Rating trials per participant (default: every stimulus once).")
@click.option("--groups", type=click.IntRange(min=2, max=3), default=3, show_default=True,
              help="Culture groups (each owning one stimulus culture).")
@click.option("--kind", type=click.Choice(["likert", "slider"]), default="likert", show_default=True)
@click.option("--nsim", type=click.IntRange(min=10), default=200, show_default=True, help="Simulations per cell.")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out", type=click.Path(path_type=Path), default=None, help="Also write the table as JSON.")
def power(participants_per_group: str, stimuli_per_culture: str, effect: str, trials: int | None, groups: int,
          kind: str, nsim: int, alpha: float, seed: int, out: Path | None) -> None:
    """Simulation-based power of the in-group test (crossed-random-effects LMM) before running a study."""
    from culturelab.analysis.power import PowerOptions, power_grid
    from culturelab.analysis.simulate import DEFAULT_GROUPS, DEFAULT_MATCH

    opts = PowerOptions(participants_per_group=_ints(participants_per_group),
                        stimuli_per_culture=_ints(stimuli_per_culture), effects=_floats(effect),
                        trials_per_participant=trials, kind=kind, nsim=nsim, alpha=alpha, seed=seed)
    chosen = DEFAULT_GROUPS[:groups]
    opts.base = replace(opts.base, groups=chosen, match={g["id"]: DEFAULT_MATCH[g["id"]] for g in chosen})
    cells = len(opts.participants_per_group) * len(opts.stimuli_per_culture) * len(opts.effects)
    with tqdm(total=cells * nsim, desc="power", unit="fit") as bar:
        rows = power_grid(opts, progress=lambda: bar.update(1))
    click.echo(f"{'per group':>9} {'stim/culture':>12} {'d':>5} {'power':>6}  95% CI")
    for r in rows:
        lo, hi = r["power_ci95"]
        click.echo(f"{r['participants_per_group']:>9} {r['stimuli_per_culture']:>12} {r['effect_d']:>5.2f} "
                   f"{r['power']:>6.2f}  [{lo:.2f}, {hi:.2f}]")
    if out:
        out.write_text(json.dumps({"schema": "culturelab.power/1", "alpha": alpha, "cells": rows}, indent=2) + "\n",
                       encoding="utf-8")


@click.command("simulate-data")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Folder for the export package.")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet"]), default="csv", show_default=True)
@click.option("--participants-per-group", type=click.IntRange(min=1), default=30, show_default=True)
@click.option("--stimuli-per-culture", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--likert-trials", type=click.IntRange(min=0), default=24, show_default=True)
@click.option("--slider-trials", type=click.IntRange(min=0), default=12, show_default=True)
@click.option("--choice-trials", type=click.IntRange(min=0), default=12, show_default=True)
@click.option("--ingroup-d", type=float, default=0.3, show_default=True, help="Planted in-group effect (d).")
@click.option("--careless-fraction", type=click.FloatRange(0, 1), default=0.04, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def simulate_data(out: Path, fmt: str, participants_per_group: int, stimuli_per_culture: int, likert_trials: int,
                  slider_trials: int, choice_trials: int, ingroup_d: float, careless_fraction: float,
                  seed: int) -> None:
    """Write a simulated export package (Contract 2) with planted effects, for checking the analysis."""
    from culturelab.analysis.simulate import SimulationOptions, simulate, write_package

    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        _fail(f"--out {out} exists and is not an empty folder")
    if likert_trials + slider_trials + choice_trials == 0:
        _fail("give at least one of --likert-trials, --slider-trials, --choice-trials")
    opts = SimulationOptions(participants_per_group=participants_per_group, stimuli_per_culture=stimuli_per_culture,
                             likert_trials=likert_trials, slider_trials=slider_trials, choice_trials=choice_trials,
                             ingroup_d=ingroup_d, careless_fraction=careless_fraction, seed=seed)
    tables, meta = simulate(opts)
    write_package(tables, meta, out, fmt)
    click.echo(f"wrote {out}: {len(tables['participants'])} participants, {len(tables['responses'])} responses ({fmt})")
