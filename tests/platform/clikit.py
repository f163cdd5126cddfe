"""How the `culturelab` command answers bad input, checked the same way by every CLI test (platform and
generation: tests/platform is on pytest's pythonpath)."""

from __future__ import annotations


def one_line_error(result, *fragments):
    """Exit code 2 and one line, naming each of ``fragments``."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
