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


class BadInput(click.ClickException):
    """One line, ``Error: ...``, exit code 2 (as the generate and platform commands report it)."""

    exit_code = 2


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
@click.option("--clmm-max-responses", default=6000, show_default=True, type=click.IntRange(min=50),
              help="Above this many Likert responses the ordinal model runs on a stated subsample of whole "
                   "participants, stratified by culture group.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for bootstraps and subsamples.")
def analyze(export_dir: Path, out: Path, exclusions: Path | None, clmm_max_responses: int, seed: int) -> None:
    """Analyse an export data package (Contract 2): writes OUT/report.html and OUT/results.json."""
    from culturelab.analysis.analyze import AnalysisOptions, run_analysis, steps
    from culturelab.analysis.load import load_package
    from culturelab.analysis.report import write_outputs

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if out.exists() and not out.is_dir():
        raise BadInput(f"--out {out} exists and is not a folder")
    try:
        rules = ExclusionRules.from_file(exclusions) if exclusions else ExclusionRules()
        pkg = load_package(export_dir)
    except (DataPackageError, ExclusionConfigError) as exc:
        raise BadInput(str(exc)) from exc
    opts = AnalysisOptions(clmm_max_responses=clmm_max_responses, seed=seed)
    with tqdm(total=steps(pkg), desc="analysis", unit="step") as bar:
        def tick(step: str) -> None:
            bar.set_postfix_str(step[:60])
            bar.update(1)

        results, extras = run_analysis(pkg, rules, opts, tick)
    json_path, html_path = write_outputs(results, extras, out)
    click.echo(f"wrote {html_path} and {json_path}: {results['n']['participants_analyzed']} of "
               f"{results['n']['participants']} participants analysed")


def _variance_options(f):
    """The generative model's SDs, shared by `power` and `simulate-data` (culturelab.analysis.simulate)."""
    for name, default, what in reversed(VARIANCE_OPTIONS):
        f = click.option(f"--{name.replace('_', '-')}", name, type=click.FloatRange(min=0), default=default,
                         show_default=True, help=what)(f)
    return f


VARIANCE_OPTIONS = [
    ("sd_participant", 0.6, "SD of participants' overall rating level."),
    ("sd_stimulus", 0.4, "SD of stimuli's overall appeal."),
    ("sd_residual", 0.7, "SD of the trial-level noise."),
    ("sd_stimulus_group", 0.3, "SD of a stimulus's appeal to one culture group (stimulus × group)."),
    ("sd_participant_culture", 0.3, "SD of a participant's taste for one stimulus culture (participant × culture)."),
]


def _unowned(values: tuple[str, ...]) -> dict[str, float]:
    out = {}
    for text in values:
        culture, sep, appeal = text.partition("=")
        try:
            out[culture.strip()] = float(appeal)
        except ValueError:
            raise click.BadParameter(f"{text!r}: give CULTURE=APPEAL, e.g. girih=-0.7 (appeal in SD units)") from None
        if not sep or not culture.strip():
            raise click.BadParameter(f"{text!r}: give CULTURE=APPEAL, e.g. girih=-0.7")
    return out


@click.command()
@click.option("--study", "study", type=click.Path(path_type=Path), default=None,
              help="Study YAML: groups, match, questions, trials and (from its stimulus sets) cultures come from it.")
@click.option("--participants-per-group", default="20,40", show_default=True, help="Comma-separated sizes.")
@click.option("--stimuli-per-culture", default=None,
              help="Comma-separated sizes [default: the study's stimulus sets, else 8].")
@click.option("--effect", default="0.2", show_default=True, help="Planted in-group effects d, comma-separated.")
@click.option("--trials", type=click.IntRange(min=1), default=None,
              help="Trials per participant per question (default: the study's, else every stimulus once).")
@click.option("--groups", type=click.IntRange(min=2), default=3, show_default=True,
              help="Without --study: culture groups, each owning one stimulus culture.")
@click.option("--kind", type=click.Choice(["likert", "slider", "choice"]), default="likert", show_default=True,
              help="Without --study: the question kind.")
@click.option("--unowned", multiple=True, metavar="CULTURE=APPEAL",
              help="A culture nobody owns and its appeal to everyone in SD units (repeatable), e.g. girih=-0.7.")
@_variance_options
@click.option("--nsim", type=click.IntRange(min=10), default=200, show_default=True, help="Simulations per cell.")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out", type=click.Path(path_type=Path), default=None, help="Also write the table as JSON.")
def power(study: Path | None, participants_per_group: str, stimuli_per_culture: str | None, effect: str,
          trials: int | None, groups: int, kind: str, unowned: tuple[str, ...], nsim: int, alpha: float, seed: int,
          out: Path | None, **variances: float) -> None:
    """Simulation-based power of the in-group test (the analysis's own model) before running a study."""
    from culturelab.analysis.power import (
        PowerOptions,
        PowerQuestion,
        StudyFileError,
        default_groups,
        power_grid,
        study_plan,
    )

    sizes = _ints(stimuli_per_culture) if stimuli_per_culture else None
    if study:
        try:
            base, questions, per_culture = study_plan(study)
        except StudyFileError as exc:
            raise BadInput(str(exc)) from exc
        sizes = sizes or [per_culture or 8]
        if trials:
            questions = [replace(q, trials=trials) for q in questions]
    else:
        opts0 = PowerOptions()
        chosen, match = default_groups(groups)
        base = replace(opts0.base, groups=chosen, match=match)
        questions = [PowerQuestion(kind, kind, trials)]
        sizes = sizes or [8]
    base = replace(base, unowned={**base.unowned, **_unowned(unowned)}, **variances)
    opts = PowerOptions(participants_per_group=_ints(participants_per_group), stimuli_per_culture=sizes,
                        effects=_floats(effect), questions=questions, nsim=nsim, alpha=alpha, seed=seed, base=base)
    cells = len(questions) * len(opts.participants_per_group) * len(opts.stimuli_per_culture) * len(opts.effects)
    with tqdm(total=cells * nsim, desc="power", unit="fit") as bar:
        rows = power_grid(opts, progress=lambda: bar.update(1))
    click.echo(f"{len(base.groups)} groups, {len(base.cultures)} cultures "
               f"({', '.join(base.cultures)}); variance SDs: "
               + ", ".join(f"{k} {v:g}" for k, v in variances.items()))
    click.echo(f"{'question':>12} {'kind':>7} {'per group':>9} {'stim/culture':>12} {'d':>5} {'power':>6}  95% CI")
    for r in rows:
        lo, hi = r["power_ci95"]
        pw = f"{r['power']:>6.2f}" if r["power"] is not None else f"{'–':>6}"
        click.echo(f"{r['question']:>12} {r['kind']:>7} {r['participants_per_group']:>9} "
                   f"{r['stimuli_per_culture']:>12} {r['effect_d']:>5.2f} {pw}  [{lo:.2f}, {hi:.2f}]")
    if out:
        doc = {"schema": "culturelab.power/1", "alpha": alpha, "variance_sds": variances,
               "unowned": base.unowned, "cells": rows}
        out.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


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
@click.option("--unowned", multiple=True, metavar="CULTURE=APPEAL",
              help="Add a culture nobody owns, with its appeal to everyone in SD units (repeatable), e.g. girih=-0.7.")
@_variance_options
@click.option("--seed", type=int, default=0, show_default=True)
def simulate_data(out: Path, fmt: str, participants_per_group: int, stimuli_per_culture: int, likert_trials: int,
                  slider_trials: int, choice_trials: int, ingroup_d: float, careless_fraction: float,
                  unowned: tuple[str, ...], seed: int, **variances: float) -> None:
    """Write a simulated export package (Contract 2) with planted effects, for checking the analysis."""
    from culturelab.analysis.simulate import SimulationOptions, simulate, write_package

    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BadInput(f"--out {out} exists and is not an empty folder")
    if likert_trials + slider_trials + choice_trials == 0:
        raise BadInput("give at least one of --likert-trials, --slider-trials, --choice-trials")
    opts = SimulationOptions(participants_per_group=participants_per_group, stimuli_per_culture=stimuli_per_culture,
                             likert_trials=likert_trials, slider_trials=slider_trials, choice_trials=choice_trials,
                             ingroup_d=ingroup_d, careless_fraction=careless_fraction, unowned=_unowned(unowned),
                             seed=seed, **variances)
    tables, meta = simulate(opts)
    write_package(tables, meta, out, fmt)
    click.echo(f"wrote {out}: {len(tables['participants'])} participants, {len(tables['responses'])} responses ({fmt})")
