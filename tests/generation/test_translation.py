"""The culture-conditioned translation GAN: model shapes and conditioning, the losses by hand, exact resume,
and `generate train-translation` / `generate translate` as a researcher runs them."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from click.testing import CliRunner
from clikit import one_line_error
from PIL import Image
from safetensors.torch import save_file

from culturelab.generation.checkpoint import DEFAULT_CHECKPOINT
from culturelab.generation.translation import (
    CONTENT_LAYER,
    LossWeights,
    TranslationConfig,
    TranslationDiscriminator,
    TranslationGenerator,
    d_adversarial_loss,
    g_adversarial_loss,
    one_hot,
    random_targets,
    relative_content_loss,
    translation_update,
    upsampling,
)
from culturelab.generation.translation_train import (
    TranslationTrainConfig,
    load_translator,
    read_translation,
    train_translation,
)
from culturelab.generation.vgg import load_features
from culturelab.platform.cli import main
from culturelab.platform.stimuli import Manifest

TINY = TranslationConfig(("girih", "kente", "content"), resolution=32, g_channels=4, d_channels=4, res_blocks=1)
TINY_TRAIN = [
    "--resolution",
    32,
    "--per-culture",
    4,
    "--batch-size",
    4,
    "--g-channels",
    4,
    "--d-channels",
    4,
    "--res-blocks",
    1,
    "--device",
    "cpu",
    "--log-every",
    1,
]


def run(*args):
    return CliRunner().invoke(main, ["generate", *map(str, args)], catch_exceptions=False)



def test_g_restyles_to_the_domain_it_is_given_and_d_has_two_heads():
    torch.manual_seed(0)
    g, d = TranslationGenerator(TINY), TranslationDiscriminator(TINY)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    to_girih, to_kente = g(x, one_hot(torch.tensor([0, 0]), 3)), g(x, one_hot(torch.tensor([1, 1]), 3))
    assert to_girih.shape == x.shape and to_girih.abs().max() <= 1
    assert (to_girih - to_kente).abs().mean() > 1e-3
    adv, cls = d(x)
    assert adv.shape == (2, 16) and cls.shape == (2, 3)  # 4x4 real/fake patches; one logit per domain


def test_resize_upsampling_leaves_no_checkerboard_where_the_transposed_one_does():
    torch.manual_seed(0)
    flat = torch.ones(1, 4, 8, 8)  # a flat input: any pattern in the output is the layer's own
    with torch.no_grad():
        transposed = upsampling(4, 2, "transpose")(flat)[..., 2:-2, 2:-2]
        resized = upsampling(4, 2, "resize")(flat)[..., 2:-2, 2:-2]
    assert transposed.shape == resized.shape == (1, 2, 12, 12)
    assert (transposed.std((-2, -1)) > 1e-3).all()  # each parity its own quarter of the kernel: a checkerboard
    assert torch.allclose(transposed, transposed[..., :2, :2].repeat(1, 1, 6, 6), atol=1e-6)
    assert (resized.std((-2, -1)) < 1e-6).all()
    g = TranslationGenerator(TranslationConfig(TINY.domains, 32, 4, 4, 1, upsample="resize"))
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in g.modules())
    assert g(torch.zeros(2, 3, 32, 32), one_hot(torch.tensor([0, 1]), 3)).shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="upsample 'bicubic' is not one of transpose, resize"):
        TranslationConfig(TINY.domains, upsample="bicubic")


def test_adversarial_losses_are_section_4_3_by_hand():
    real, fake = torch.tensor([[2.0]]), torch.tensor([[-1.0]])
    # L_D = -log sigmoid(2) - log(1 - sigmoid(-1)); L_G = -log sigmoid(-1)
    sigmoid = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    assert d_adversarial_loss(real, fake).item() == pytest.approx(-math.log(sigmoid(2)) - math.log(1 - sigmoid(-1)))
    assert g_adversarial_loss(fake).item() == pytest.approx(-math.log(sigmoid(-1)))


def test_targets_are_any_other_domain():
    source = torch.tensor([0, 1, 2] * 200)
    target = random_targets(source, 3, torch.Generator().manual_seed(0))
    assert (target != source).all()
    assert {(s, t) for s, t in zip(source.tolist(), target.tolist(), strict=True)} == {
        (0, 1),
        (0, 2),
        (1, 0),
        (1, 2),
        (2, 0),
        (2, 1),
    }


def test_an_update_reports_the_cycle_and_d_losses_of_the_models_it_started_with():
    torch.manual_seed(1)
    g, d = TranslationGenerator(TINY), TranslationDiscriminator(TINY)
    g0, d0 = copy.deepcopy(g), copy.deepcopy(d)
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    source, target = torch.tensor([0, 1, 2, 2]), torch.tensor([1, 2, 0, 1])
    opt_g, opt_d = torch.optim.Adam(g.parameters()), torch.optim.Adam(d.parameters())
    stats = translation_update(g, d, opt_g, opt_d, x, source, target, LossWeights())
    with torch.no_grad():
        fake = g0(x, one_hot(target, 3))
        expected_d = d_adversarial_loss(d0(x)[0], d0(fake)[0])
        # cycle reconstruction |x - G(G(x, c), c_x)|_1 with G as it was (D is updated first, G after)
        expected_rec = (x - g0(fake, one_hot(source, 3))).abs().mean()
    assert stats["loss_d_adv"] == pytest.approx(expected_d.item(), rel=1e-5)
    assert stats["loss_rec"] == pytest.approx(expected_rec.item(), rel=1e-5)
    assert any(not torch.equal(a, b) for a, b in zip(g.parameters(), g0.parameters(), strict=True))


def test_content_term_is_section_4_1_relative_to_the_contents_own_response():
    features, _ = load_features("random", [CONTENT_LAYER], seed=3)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    restyled = x.flip(-1)
    # §4.1: L_content = 1/2 sum (F - P)^2 on conv4_2, here divided by 1/2 sum P^2, per image, then averaged
    f, p = features((restyled + 1) / 2)[CONTENT_LAYER], features((x + 1) / 2)[CONTENT_LAYER]
    by_hand = sum(((f[i] - p[i]) ** 2).sum() / (p[i] ** 2).sum() for i in range(2)) / 2
    assert relative_content_loss(features, restyled, x).item() == pytest.approx(by_hand.item(), rel=1e-5)
    assert relative_content_loss(features, x, x).item() == 0


def test_the_content_term_applies_to_content_images_only_and_moves_g():
    features, _ = load_features("random", [CONTENT_LAYER], seed=3)
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    source, target = torch.tensor([0, 1, 2, 2]), torch.tensor([1, 2, 0, 1])
    updated = {}
    for weight in (0.0, 100.0):
        torch.manual_seed(1)
        g, d = TranslationGenerator(TINY), TranslationDiscriminator(TINY)
        g0 = copy.deepcopy(g)
        opt_g, opt_d = torch.optim.Adam(g.parameters()), torch.optim.Adam(d.parameters())
        stats = translation_update(g, d, opt_g, opt_d, x, source, target, LossWeights(content=weight), features)
        updated[weight] = g
    with torch.no_grad():  # the two content images (domain 2) against their restyled versions, G as it was
        expected = relative_content_loss(features, g0(x[2:], one_hot(target[2:], 3)), x[2:])
    assert stats["loss_content"] == pytest.approx(expected.item(), rel=1e-5)
    without, with_content = updated[0.0].parameters(), updated[100.0].parameters()
    assert any(not torch.equal(a, b) for a, b in zip(without, with_content, strict=True))


def _tiny_train(out, steps, **overrides):
    settings = dict(
        out=str(out),
        resolution=32,
        per_culture=4,
        steps=steps,
        batch_size=4,
        g_channels=4,
        d_channels=4,
        res_blocks=1,
        log_every=1,
        checkpoint_every=2,
        device="cpu",
    )
    return TranslationTrainConfig(**(settings | overrides))


def test_resume_continues_exactly_as_if_never_stopped(tmp_path):
    torch.set_num_threads(1)
    straight = read_translation(train_translation(_tiny_train(tmp_path / "a", 4), progress=False))[1]
    train_translation(_tiny_train(tmp_path / "b", 2), progress=False)
    resumed = read_translation(train_translation(_tiny_train(tmp_path / "b", 4, resume=True), progress=False))[1]
    assert straight.keys() == resumed.keys()
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key
    header = read_translation(tmp_path / "b" / "checkpoint.safetensors")[0]
    assert header["step"] == 4 and header["model"]["domains"][-1] == "content"
    assert len((tmp_path / "b" / "metrics.jsonl").read_text().splitlines()) == 4


@pytest.fixture(scope="module")
def translator(tmp_path_factory):
    out = tmp_path_factory.mktemp("translation")
    torch.set_num_threads(1)
    result = run("train-translation", "--out", out, "--steps", 2, *TINY_TRAIN)
    assert result.exit_code == 0, result.output
    return out / "generator.safetensors"


def test_translate_writes_the_content_by_culture_grid(translator, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("translate", "--checkpoint", translator, "--out", "set", "--device", "cpu")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "set" / "manifest.json").read_text())
    Manifest.model_validate(manifest)
    assert manifest["cultures"] == ["seigaiha", "girih", "kente", "meander", "ice_ray"]
    assert len(manifest["stimuli"]) == 25 and {s["method"] for s in manifest["stimuli"]} == {"translation"}
    assert {s["content"] for s in manifest["stimuli"]} == {"boat", "fish", "flower", "house", "tree"}
    assert manifest["generator"]["method"] == "translation" and manifest["generator"]["step"] == 2
    with Image.open(tmp_path / "set" / "images" / "house-girih.png") as im:
        assert im.size == (32, 32)
    again = run("translate", "--checkpoint", translator, "--out", "again", "--device", "cpu", "--batch-size", 3)
    assert again.exit_code == 0
    second = json.loads((tmp_path / "again" / "manifest.json").read_text())
    assert [s["sha256"] for s in second["stimuli"]] == [s["sha256"] for s in manifest["stimuli"]]


def test_translate_takes_a_subset_of_cultures_and_the_users_content(translator, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (80, 60), "orange").save("sun.png")
    result = run(
        "translate",
        "--checkpoint",
        translator,
        "--content",
        "sun.png",
        "--cultures",
        "kente,girih",
        "--out",
        "set",
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "set" / "manifest.json").read_text())
    assert [s["id"] for s in manifest["stimuli"]] == ["sun-kente", "sun-girih"]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--cultures", "aztec"], ["unknown culture(s) aztec", "the model knows seigaiha"]),
        (["--content", "tiny.png"], ["tiny.png is 8x8 px"]),
        (["--cultures", "girih,kente,girih"], ["named twice: girih"]),  # ids would repeat (Contract 1)
        (["--cultures", ","], ["no culture named"]),
    ],
)
def test_translate_bad_input_is_one_line_and_leaves_no_set(translator, tmp_path, monkeypatch, args, fragments):
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (8, 8)).save("tiny.png")
    one_line_error(run("translate", "--checkpoint", translator, "--out", "set", "--device", "cpu", *args), *fragments)
    assert not (tmp_path / "set").exists() and not list(tmp_path.glob(".set*"))


def test_translate_refuses_a_cgan_or_missing_checkpoint(tmp_path):
    one_line_error(
        run("translate", "--checkpoint", DEFAULT_CHECKPOINT, "--out", tmp_path / "s"), "not a translation model"
    )
    one_line_error(
        run("translate", "--checkpoint", tmp_path / "none.safetensors", "--out", tmp_path / "s"), "does not exist"
    )
    assert not (tmp_path / "s").exists()


def test_resume_with_other_settings_is_refused(translator, tmp_path):
    run_dir = translator.parent
    result = run(
        "train-translation",
        "--out",
        run_dir,
        "--steps",
        3,
        "--resume",
        *TINY_TRAIN[:4],
        "--batch-size",
        6,
        *TINY_TRAIN[6:],
    )
    one_line_error(result, "other settings (batch_size)")
    resume = ("train-translation", "--out", run_dir, "--steps", 3, "--resume", *TINY_TRAIN)
    one_line_error(run(*resume, "--features", "imagenet"), "other settings (features)")
    one_line_error(run(*resume, "--upsample", "resize"), "other settings (upsample)")
    odd = run(
        "train-translation", "--out", tmp_path / "r", "--steps", 1, *TINY_TRAIN[:4], "--batch-size", 5, *TINY_TRAIN[6:]
    )
    one_line_error(odd, "must be even")


def test_resume_after_the_image_folder_gained_a_culture_is_refused(tmp_path):
    def add_culture(culture, colour):
        (tmp_path / "data" / culture).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (40, 40), colour).save(tmp_path / "data" / culture / f"{i}.png")

    add_culture("red", "#c00")
    add_culture("blue", "#00c")
    args = ("train-translation", "--out", tmp_path / "r", "--data", tmp_path / "data", "--steps")
    assert run(*args, 1, *TINY_TRAIN).exit_code == 0
    add_culture("green", "#0c0")
    refused = run(*args, 2, "--resume", *TINY_TRAIN)  # found once the images are read: after their progress bar
    assert refused.exit_code == 2 and "trained on other domains (blue, red, content)" in refused.output.splitlines()[-1]


def test_a_run_from_before_the_upsample_and_features_options_still_loads_and_resumes(tmp_path):
    torch.set_num_threads(1)
    first = train_translation(_tiny_train(tmp_path / "old", 2), progress=False)
    for path in (first, tmp_path / "old" / "checkpoint.safetensors"):  # as such runs were written
        header, tensors = read_translation(path)
        del header["model"]["upsample"], header["train"]["upsample"], header["train"]["features"]
        save_file(tensors, str(path), metadata={"culturelab": json.dumps(header)})
    g, _ = load_translator(first)
    assert g.config.upsample == "transpose"
    resumed = train_translation(_tiny_train(tmp_path / "old", 3, resume=True), progress=False)
    assert read_translation(resumed)[0]["step"] == 3


def test_train_translation_with_the_content_term_records_its_features(tmp_path):
    result = run("train-translation", "--out", tmp_path / "r", "--steps", 2, "--lambda-content", 1, *TINY_TRAIN)
    assert result.exit_code == 0, result.output
    header = read_translation(tmp_path / "r" / "generator.safetensors")[0]
    assert header["content_features"] == {"kind": "random", "file": None, "sha256": None, "seed": 0}
    assert header["train"]["lambda_content"] == 1
    metrics = (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == 2 and all("loss_content" in json.loads(line) for line in metrics)


def test_train_translation_without_imagenet_weights_says_where_they_go_before_starting(tmp_path):
    result = run(
        "train-translation",
        "--out",
        tmp_path / "r",
        "--lambda-content",
        1,
        "--features",
        "imagenet",
        "--vgg-weights",
        tmp_path / "vgg19.pth",
        *TINY_TRAIN,
    )
    one_line_error(result, "vgg19-dcbb9e9d.pth", str(tmp_path / "vgg19.pth"))
    assert not (tmp_path / "r").exists()
