"""The `culturelab` command as a researcher uses it: one clear line and exit code 2 for bad input."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

from clikit import one_line_error

from studykit import write_study


def test_validate_load_export_round_trip(run, tmp_path):
    study = write_study(tmp_path)
    result = run("study", "validate", study)
    assert result.exit_code == 0 and "ok: study 'motif-test'" in result.output
    one_line_error(run("study", "load", study), "culturelab db upgrade")
    assert run("db", "upgrade").exit_code == 0
    assert run("study", "load", study).output.startswith("created: study 'motif-test' in ")
    assert run("study", "load", study).output.startswith("unchanged: study 'motif-test' in ")
    out = tmp_path / "package"
    result = run("export", "--study", "motif-test", "--out", out)
    assert result.exit_code == 0 and "24 stimuli" in result.output
    with (out / "participants.csv").open() as f:
        assert next(csv.reader(f))[0] == "participant_id"
    assert (
        run("export", "--study", "motif-test", "--out", tmp_path / "pq", "--format", "parquet").exit_code == 0
    )
    assert (tmp_path / "pq" / "responses.parquet").exists()


def test_bad_study_files_are_one_line_with_exit_2(run, tmp_path):
    one_line_error(run("study", "validate", tmp_path / "missing.yaml"), "cannot read")
    study = write_study(tmp_path, design={"trials_per_participant": -1})
    one_line_error(run("study", "validate", study), "design.trials_per_participant")
    study = write_study(tmp_path)
    (tmp_path / "stimuli" / "images" / "girih-0003.png").write_bytes(b"broken")
    one_line_error(run("study", "validate", study), "girih-0003")


def test_unknown_study_and_bad_format(run, tmp_path):
    assert run("db", "upgrade").exit_code == 0
    one_line_error(run("export", "--study", "nope", "--out", tmp_path / "x"), "no study 'nope'")
    one_line_error(run("export", "--study", "x", "--out", tmp_path / "x", "--format", "xlsx"), "xlsx")


def test_researcher_accounts(run):
    assert run("db", "upgrade").exit_code == 0
    assert (
        run("researcher", "create", "ada@example.org", "--password", "correct horse battery").exit_code == 0
    )
    one_line_error(
        run("researcher", "create", "ada@example.org", "--password", "correct horse battery"),
        "already exists",
    )
    one_line_error(run("researcher", "create", "bob@example.org", "--password", "short"), "at least 10")


def test_the_installed_command_runs_without_importing_torch():
    probe = "import sys; from culturelab.platform.cli import main; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", probe], check=True)
    # Nor do the generation and analysis commands build (or import) the web app.
    probe = ("import sys\nfrom culturelab.platform.cli import main\ntry:\n    main(['analyze', '--help'])\n"
             "except SystemExit:\n    pass\nprint('culturelab.platform.app' in sys.modules)")
    imported = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True)
    assert imported.stdout.splitlines()[-1] == "False", "analyze imported the web app"
    result = subprocess.run(["culturelab", "--help"], capture_output=True, text=True, check=True)
    assert "generate" in result.stdout and "analyze" in result.stdout and "serve" in result.stdout


def test_the_bundled_example_study_is_valid_and_can_be_taken(run, app):
    from culturelab.platform.cli import EXAMPLE_STUDY
    from culturelab.platform.db import session_scope
    from culturelab.platform.study import read_study
    from culturelab.platform.study_load import load_study

    from bot import Bot

    result = run("study", "validate", EXAMPLE_STUDY)
    assert result.exit_code == 0, result.output
    with session_scope(app) as session:
        load_study(session, read_study(EXAMPLE_STUDY), EXAMPLE_STUDY.parent, Path(app.config["MEDIA_DIR"]))
    done = Bot(app.test_client(), "motif-preferences", language="zh").complete("east_asian")
    assert done["done"] and done["completion_code"]
