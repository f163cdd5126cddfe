"""The `culturelab` command: the composition root of the three components (DESIGN.md).

Platform commands are Flask-style click commands run inside an app context; the generation and analysis
commands live in their own packages and are loaded only when invoked, so `culturelab serve` never
imports torch and `culturelab generate` never imports Flask.
"""

from __future__ import annotations

import importlib

import click


class LazyGroup(click.Group):
    """A click group whose subcommands named in ``lazy`` are imported on first use (click docs pattern)."""

    def __init__(self, *args, lazy: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = lazy or {}

    def list_commands(self, ctx):
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx, cmd_name):
        if cmd_name in self.lazy:
            module_name, attr = self.lazy[cmd_name].split(":")
            return getattr(importlib.import_module(module_name), attr)
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=LazyGroup,
    lazy={
        "generate": "culturelab.generation.cli:generate",
        "analyze": "culturelab.analysis.cli:analyze",
        "power": "culturelab.analysis.cli:power",
        "simulate-data": "culturelab.analysis.cli:simulate_data",
    },
)
@click.version_option(package_name="culturelab")
def main() -> None:
    """CultureLab: generate culture-conditioned stimuli, run rating studies, analyse the results."""
