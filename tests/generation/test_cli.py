"""`culturelab generate ...` as a researcher runs it: results on success, one line and exit 2 on bad input."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from clikit import one_line_error
from safetensors.torch import save_file

from culturelab.generation.checkpoint import DEFAULT_CHECKPOINT
from culturelab.platform.cli import main


def run(*args):
    return CliRunner().invoke(main, ["generate", *[str(a) for a in args]], catch_exceptions=False)



def test_dataset_command_writes_an_image_folder(tmp_path):
    result = run("dataset", "motifs", "--out", tmp_path / "d", "--per-culture", 2, "--resolution", 32, "--seed", 3)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["girih", "ice_ray", "kente", "meander", "seigaiha"]
    assert len(list((tmp_path / "d" / "kente").glob("*.png"))) == 2


def test_sample_command_writes_a_set(tmp_path, tiny_generator):
    out = tmp_path / "set"
    result = run(
        "sample",
        "--checkpoint",
        tiny_generator,
        "--per-culture",
        2,
        "--out",
        out,
        "--seed",
        4,
        "--mix",
        "girih=0.5,kente=0.5",
        "--sweep",
        "seigaiha,ice_ray",
        "--steps",
        3,
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["schema"] == "culturelab.stimuli/1" and len(manifest["stimuli"]) == 2 * 4
    assert manifest["generator"]["checkpoint_sha256"] and (out / "contact-sheet.png").exists()


def test_sample_uses_the_shipped_checkpoint_by_default(tmp_path):
    assert DEFAULT_CHECKPOINT.exists()
    result = run("sample", "--per-culture", 1, "--out", tmp_path / "set", "--device", "cpu")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "set" / "manifest.json").read_text())
    assert [s["culture"] for s in manifest["stimuli"]] == manifest["cultures"]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--mix", "girih=1,tartan=1"], ["unknown culture 'tartan'"]),
        (["--mix", "girih=0,kente=0"], ["sum to a positive"]),
        (["--sweep", "girih"], ["CULTURE_A,CULTURE_B"]),
        (["--resolution", "64"], ["makes 32 px images", "--resolution 64"]),
        (["--per-culture", "0"], ["--per-culture"]),
        (["--seed", str(2**64)], ["--seed"]),  # past torch's int64: was "Overflow when unpacking long long"
        (["--name", "x" * 129], ["--name", "1 to 128"]),
    ],
)
def test_sample_bad_input(tmp_path, tiny_generator, args, fragments):
    base = ["sample", "--checkpoint", tiny_generator, "--per-culture", 1, "--out", tmp_path / "set"]
    if "--per-culture" in args:
        base = base[:3] + base[5:]
    one_line_error(run(*base, *args), *fragments)
    assert not (tmp_path / "set").exists()


def test_bad_checkpoints(tmp_path, tiny_generator):
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00" * 64)
    other = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(1)}, str(other), metadata={"culturelab": json.dumps({"format": "culturelab.cgan/0"})})
    foreign = tmp_path / "foreign.safetensors"
    save_file({"x": torch.zeros(1)}, str(foreign))
    for path, fragment in [
        (tmp_path / "missing.safetensors", "does not exist"),
        (corrupt, "not a readable"),
        (other, "format 'culturelab.cgan/0'"),
        (foreign, "no CultureLab header"),
    ]:
        one_line_error(run("sample", "--checkpoint", path, "--per-culture", 1, "--out", tmp_path / "s"), fragment)
    assert not (tmp_path / "s").exists()


def test_existing_set_is_refused(tmp_path, tiny_generator):
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "x").write_text("x")
    one_line_error(
        run("sample", "--checkpoint", tiny_generator, "--per-culture", 1, "--out", tmp_path / "set"), "already exists"
    )


def test_train_bad_data_and_vectors(tmp_path):
    (tmp_path / "data" / "only").mkdir(parents=True)
    one_line_error(
        run("train", "--data", tmp_path / "data", "--out", tmp_path / "run", "--device", "cpu"),
        "at least two culture sub-folders",
    )
    (tmp_path / "v.json").write_text("[1, 2]")
    one_line_error(
        run(
            "train",
            "--culture-vectors",
            tmp_path / "v.json",
            "--per-culture",
            1,
            "--out",
            tmp_path / "run",
            "--device",
            "cpu",
        ),
        "must be a JSON object",
    )
    one_line_error(run("train", "--resolution", "48"), "--resolution")


@pytest.mark.parametrize(
    ("option", "value"),
    [("--lr-g", "-1"), ("--lr-d", "nan"), ("--beta1", "2"), ("--beta2", "inf"), ("--ema-decay", "5")],
)
def test_train_refuses_optimiser_settings_torch_would_raise_on(tmp_path, option, value):
    one_line_error(run("train", "--out", tmp_path / "run", option, value), option)
    assert not (tmp_path / "run").exists()


def test_outputs_that_cannot_be_written_are_one_line_before_any_work(tmp_path, tiny_generator):
    (tmp_path / "afile").write_text("x")
    one_line_error(
        run("sample", "--checkpoint", tiny_generator, "--per-culture", 1, "--out", tmp_path / "afile" / "set"),
        "cannot write a set in",
    )
    one_line_error(run("dataset", "motifs", "--out", tmp_path / "afile" / "d", "--per-culture", 1), "afile")
    one_line_error(
        run("evaluate", "--checkpoint", tiny_generator, "--out", tmp_path / "afile" / "e.json"), "cannot write"
    )
    one_line_error(run("evaluate", "--checkpoint", tiny_generator, "--out", tmp_path), "is a directory")


def test_a_dataset_is_written_to_a_new_folder_only(tmp_path):
    assert run("dataset", "motifs", "--out", tmp_path / "d", "--per-culture", 2, "--resolution", 32).exit_code == 0
    # Rewriting with fewer images would have left old ones of another seed beside the new.
    one_line_error(run("dataset", "motifs", "--out", tmp_path / "d", "--per-culture", 1), "not an empty folder")
    assert len(list((tmp_path / "d" / "kente").glob("*.png"))) == 2


def test_train_command_end_to_end(tmp_path):
    result = run(
        "train",
        "--per-culture",
        2,
        "--steps",
        2,
        "--batch-size",
        8,
        "--z-dim",
        8,
        "--g-channels",
        4,
        "--d-channels",
        4,
        "--culture-dim",
        4,
        "--device",
        "cpu",
        "--out",
        tmp_path / "run",
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "generator.safetensors").exists()
    # The same folder again without --resume: refused before any work, the run left as it was.
    again = run("train", "--per-culture", 2, "--steps", 2, "--device", "cpu", "--out", tmp_path / "run")
    one_line_error(again, "already holds a run", "--resume")


def test_evaluate_command(tmp_path, tiny_generator):
    out = tmp_path / "eval.json"
    result = run("evaluate", "--checkpoint", tiny_generator, "--per-culture", 10, "--device", "cpu", "--out", out)
    assert result.exit_code == 0, result.output
    assert "culture accuracy" in result.output
    assert json.loads(out.read_text())["summary"].keys() == {"culture_accuracy", "diversity_ratio", "kid", "fid"}
    one_line_error(
        run("evaluate", "--checkpoint", tiny_generator, "--per-culture", 10, "--data", tmp_path / "nope"),
        "does not exist",
    )
    one_line_error(
        run(
            "evaluate",
            "--checkpoint",
            tiny_generator,
            "--per-culture",
            10,
            "--inception-weights",
            tmp_path / "inception.pth",
        ),
        "inception.pth",
    )
