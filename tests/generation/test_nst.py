"""Style transfer's losses against hand computations (research design §4.1, §4.2, §3.3), the batched
L-BFGS against torch's, and the VGG19 features (layer taps, ImageNet file, seeded random weights)."""

from __future__ import annotations

import socket

import pytest
import torch
from torch import nn

from culturelab.generation.checkpoint import sha256_file
from culturelab.generation.lbfgs import minimize_lbfgs
from culturelab.generation.nst import (
    NSTConfig,
    StyleLayerLoss,
    Targets,
    content_loss,
    content_targets,
    gram_matrix,
    losses,
    style_grams,
    style_layer_loss,
    stylize,
    tv_loss,
)
from culturelab.generation.vgg import IMAGENET_FILE, FeaturesError, _random_body, load_features


def test_content_loss_is_half_the_summed_squared_difference():
    # §4.1: L_content = 1/2 sum_ij (F_ij - P_ij)^2; differences 0, 2, 3, 2 -> 1/2 (0 + 4 + 9 + 4) = 8.5
    f = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    p = torch.tensor([[[[1.0, 0.0], [0.0, 2.0]]]])
    assert content_loss(f, p).tolist() == [8.5]


def test_gram_matrix_sums_products_over_positions():
    # §4.2: G_ij = sum_k F_ik F_jk; channels (1, 2, 3) and (0, 1, -1) over M = 3 positions
    f = torch.tensor([[1.0, 2.0, 3.0], [0.0, 1.0, -1.0]]).view(1, 2, 1, 3)
    assert gram_matrix(f).tolist() == [[[14.0, -1.0], [-1.0, 2.0]]]


def test_style_layer_loss_normalises_by_4_n2_m2():
    # §4.2: E_l = 1/(4 N^2 M^2) sum_ij (G_ij - A_ij)^2; N = 2, M = 3: (16 + 1 + 1 + 1) / (4 * 4 * 9) = 19/144
    g = torch.tensor([[[14.0, -1.0], [-1.0, 2.0]]])
    a = torch.tensor([[[10.0, 0.0], [0.0, 1.0]]])
    assert style_layer_loss(g, a, n=2, m=3).item() == pytest.approx(19 / 144)


def test_the_style_loss_with_its_written_out_gradient_is_e_l_of_the_gram_matrix():
    # §4.2 through gram_matrix and style_layer_loss, against the fused op with Gatys et al.'s eq. 6 gradient
    gen = torch.Generator().manual_seed(0)
    f = torch.rand(2, 3, 4, 5, generator=gen, dtype=torch.float64).to(memory_format=torch.channels_last)
    a = gram_matrix(torch.rand(2, 3, 4, 5, generator=gen, dtype=torch.float64))
    f.requires_grad_(True)
    reference = style_layer_loss(gram_matrix(f), a, n=3, m=20)
    (expected,) = torch.autograd.grad(reference.sum(), f)
    fused = StyleLayerLoss.apply(f, a)
    (got,) = torch.autograd.grad(fused.sum(), f)
    torch.testing.assert_close(fused, reference)
    torch.testing.assert_close(got, expected)
    assert torch.autograd.gradcheck(lambda f: StyleLayerLoss.apply(f, a.transpose(1, 2) + 1.0), (f,))


def test_total_variation_sums_squared_neighbour_differences():
    x = torch.tensor([[[[1.0, 2.0], [4.0, 8.0]]]])
    # vertical (4-1)^2 + (8-2)^2 = 45, horizontal (2-1)^2 + (8-4)^2 = 17
    assert tv_loss(x).item() == 62.0


def test_total_loss_is_alpha_content_plus_beta_weighted_style_per_image():
    # §3.3: L_total = alpha L_content + beta sum_l w_l E_l (+ TV), with identity "features" on two layers
    cfg = NSTConfig(content_layers=("a",), style_layers=("a", "b"), style_weights=(0.25, 2.0), alpha=3.0, beta=5.0)

    def features(x):
        return {"a": x, "b": 2 * x}

    x = torch.tensor([[[[1.0, 2.0]]], [[[0.0, 1.0]]]])  # two images, N = 1 channel, M = 2 positions
    targets = Targets({"a": torch.zeros(2, 1, 1, 2)}, {"a": torch.ones(2, 1, 1), "b": torch.zeros(2, 1, 1)})
    total, parts = losses(features, x, targets, cfg)
    # image 0: L_content = 1/2 (1 + 4) = 2.5; G_a = 5, E_a = (5 - 1)^2 / (4 * 1 * 4) = 1; G_b = 20, E_b = 400 / 16 = 25
    # image 1: L_content = 0.5; G_a = 1, E_a = 0; G_b = 4, E_b = 16 / 16 = 1
    assert parts["content"].tolist() == [2.5, 0.5]
    assert parts["style"].tolist() == [0.25 * 1 + 2.0 * 25, 2.0 * 1]
    assert total.tolist() == [3.0 * 2.5 + 5.0 * 50.25, 3.0 * 0.5 + 5.0 * 2.0]


def test_batched_lbfgs_gives_each_item_what_torch_lbfgs_gives_it_alone():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(3, 12, 12, generator=gen, dtype=torch.float64)
    b = torch.randn(3, 12, generator=gen, dtype=torch.float64)
    x0 = torch.randn(3, 12, generator=gen, dtype=torch.float64)

    def objective(x, a, b):  # not quadratic, so the history and step rules all matter
        return (torch.einsum("bij,bj->bi", a, x) - b).pow(2).sum(1).pow(1.5) + x.pow(4).sum(1)

    x = x0.clone().requires_grad_(True)

    def closure():
        x.grad = None
        loss = objective(x, a, b)
        loss.sum().backward()
        return loss

    assert minimize_lbfgs(x, closure, 25, history_size=5) == 25
    for i in range(3):
        xi = x0[i : i + 1].clone().requires_grad_(True)
        opt = torch.optim.LBFGS([xi], lr=1.0, max_iter=25, history_size=5)

        def closure_i(i=i, xi=xi, opt=opt):
            opt.zero_grad()
            loss = objective(xi, a[i : i + 1], b[i : i + 1]).sum()
            loss.backward()
            return loss

        opt.step(closure_i)
        torch.testing.assert_close(x[i].detach(), xi[0].detach(), rtol=1e-9, atol=1e-9)
        assert objective(xi, a[i : i + 1], b[i : i + 1]).item() < 0.01 * objective(x0[i : i + 1], a, b)[i].item()


def test_batched_lbfgs_skips_a_rejected_pair_for_that_item_only():
    """Double wells: starting near 0 the curvature is negative, so some pairs have y·s < 0 and torch drops
    them; item 0 sits at a stationary point (step 0, every pair rejected), the others stop at different steps."""
    gen = torch.Generator().manual_seed(4)
    x0 = torch.randn(3, 6, generator=gen, dtype=torch.float64) * 0.3
    a = torch.randn(3, 6, generator=gen, dtype=torch.float64) * 0.2
    x0[0], a[0] = 0.0, 0.0

    def objective(x, a):
        return (x * x - 1).pow(2).sum(1) + (a * x).sum(1)

    x = x0.clone().requires_grad_(True)

    def closure():
        x.grad = None
        loss = objective(x, a)
        loss.sum().backward()
        return loss

    minimize_lbfgs(x, closure, 30, lr=0.5, history_size=40)
    kept_pairs = []
    for i in range(3):
        xi = x0[i : i + 1].clone().requires_grad_(True)
        opt = torch.optim.LBFGS([xi], lr=0.5, max_iter=30, history_size=40)

        def closure_i(i=i, xi=xi, opt=opt):
            opt.zero_grad()
            loss = objective(xi, a[i : i + 1]).sum()
            loss.backward()
            return loss

        opt.step(closure_i)
        state = opt.state[xi]
        kept_pairs.append((state["n_iter"], len(state.get("old_dirs", []))))
        torch.testing.assert_close(x[i].detach(), xi[0].detach(), rtol=1e-12, atol=1e-12)
    assert kept_pairs[0] == (0, 0) and kept_pairs[1] == (30, 25) and kept_pairs[2] == (20, 17)  # 4 and 2 rejected


def test_features_tap_each_named_conv_after_its_relu():
    vgg, _ = load_features("random", ["conv4_2", "conv1_1"], seed=0)
    # torchvision's vgg19().features: conv1_1 is module 0 and conv4_2 module 21, each followed by its ReLU
    assert vgg.taps == {1: "conv1_1", 22: "conv4_2"} and len(vgg.body) == 23
    assert isinstance(vgg.body[21], nn.Conv2d) and isinstance(vgg.body[22], nn.ReLU)
    x = torch.rand(1, 3, 32, 32)
    out = vgg(x)
    h = (x - vgg.mean) / vgg.std
    expected = vgg.body[:23](h)
    torch.testing.assert_close(out["conv4_2"], expected)
    assert out["conv4_2"].min() >= 0 and out["conv1_1"].shape == (1, 64, 32, 32)
    with pytest.raises(FeaturesError, match="unknown VGG19 layer"):
        load_features("random", ["conv6_1"])


def test_random_features_are_seeded():
    a, source = load_features("random", ["conv2_1"], seed=3)
    b, _ = load_features("random", ["conv2_1"], seed=3)
    c, _ = load_features("random", ["conv2_1"], seed=4)
    torch.testing.assert_close(a.body[5].weight, b.body[5].weight)
    assert not torch.equal(a.body[5].weight, c.body[5].weight)
    assert source.to_dict() == {"kind": "random", "file": None, "sha256": None, "seed": 3}


@pytest.fixture(scope="module")
def imagenet_file(tmp_path_factory):
    """A file laid out as torchvision's vgg19-dcbb9e9d.pth (seeded weights stand in for ImageNet's)."""
    path = tmp_path_factory.mktemp("weights") / IMAGENET_FILE
    torch.save({f"features.{k}": v for k, v in _random_body(7).state_dict().items()}, path)
    return path


def test_imagenet_features_read_the_given_file_or_the_cache_and_never_the_network(imagenet_file, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the network was reached")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    vgg, source = load_features("imagenet", ["conv1_1"], weights=imagenet_file)
    torch.testing.assert_close(vgg.body[0].weight, _random_body(7)[0].weight)
    assert source.kind == "imagenet" and source.sha256 == sha256_file(imagenet_file) and source.file == IMAGENET_FILE
    # torchvision's cache: torch.hub.get_dir()/checkpoints/vgg19-dcbb9e9d.pth
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(imagenet_file.parent.parent))
    with pytest.raises(FeaturesError, match=rf"put {IMAGENET_FILE} .* at {imagenet_file.parent.parent}/checkpoints/"):
        load_features("imagenet", ["conv1_1"])
    (imagenet_file.parent.parent / "checkpoints").mkdir()
    (imagenet_file.parent.parent / "checkpoints" / IMAGENET_FILE).symlink_to(imagenet_file)
    assert load_features("imagenet", ["conv1_1"])[1].sha256 == source.sha256


def test_a_file_that_is_not_vgg19_is_refused(tmp_path):
    bad = tmp_path / "other.pth"
    torch.save({"features.0.weight": torch.zeros(3)}, bad)
    with pytest.raises(FeaturesError, match="does not hold torchvision's VGG19 weights"):
        load_features("imagenet", ["conv1_1"], weights=bad)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(FeaturesError, match="cannot read VGG19 weights"):
        load_features("imagenet", ["conv1_1"], weights=tmp_path / "junk.pth")


def _tiny_problem(steps=6, optimizer="lbfgs"):
    cfg = NSTConfig(
        content_layers=("conv2_2",), style_layers=("conv1_1", "conv2_1"), beta=1e8, steps=steps, optimizer=optimizer
    )
    vgg, _ = load_features("random", cfg.layers, seed=0)
    gen = torch.Generator().manual_seed(1)
    content = torch.rand(3, 3, 32, 32, generator=gen)
    style = torch.rand(2, 3, 32, 32, generator=gen)
    grams = [style_grams(vgg, style[i : i + 1], cfg) for i in range(2)]
    return cfg, vgg, content, grams


def _targets(vgg, cfg, content, grams, which):
    return Targets(content_targets(vgg, content, cfg), {k: torch.stack([grams[j][k] for j in which]) for k in grams[0]})


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_stylize_lowers_the_loss_and_a_pair_does_not_depend_on_its_batch(optimizer):
    torch.set_num_threads(1)
    cfg, vgg, content, grams = _tiny_problem(optimizer=optimizer)
    targets = _targets(vgg, cfg, content, grams, [0, 1, 0])
    out = stylize(vgg, content, targets, cfg)
    before, _ = losses(vgg, content, targets, cfg)
    after, _ = losses(vgg, out, targets, cfg)
    assert (after < 0.5 * before).all(), (before, after)
    alone = stylize(vgg, content[1:2], _targets(vgg, cfg, content[1:2], grams, [1]), cfg)
    torch.testing.assert_close(alone[0], out[1], atol=2e-4, rtol=0)


def test_style_targets_average_the_gram_matrices_of_several_images():
    cfg, vgg, _, _ = _tiny_problem()
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    both = style_grams(vgg, images, cfg)
    one, two = style_grams(vgg, images[:1], cfg), style_grams(vgg, images[1:], cfg)
    torch.testing.assert_close(both["conv2_1"], (one["conv2_1"] + two["conv2_1"]) / 2)


def test_bf16_runs_the_vgg_passes_in_bf16_and_keeps_the_losses_close_and_in_fp32():
    torch.set_num_threads(1)
    cfg, vgg, content, grams = _tiny_problem(steps=4)
    bf16 = NSTConfig(**{**cfg.__dict__, "precision": "bf16"})
    targets = _targets(vgg, cfg, content, grams, [0, 1, 0])
    seen = []
    hook = vgg.body[0].register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    x = content.clone().requires_grad_(True)
    total, parts = losses(vgg, x, targets, bf16)
    total.sum().backward()
    hook.remove()
    assert seen == [torch.bfloat16] and total.dtype == torch.float32 and x.grad.dtype == torch.float32
    reference, _ = losses(vgg, content, targets, cfg)
    torch.testing.assert_close(total.detach(), reference, rtol=0.05, atol=0)
    out = stylize(vgg, content, targets, bf16)
    assert (losses(vgg, out, targets, cfg)[0] < 0.5 * reference).all()  # it still optimises
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        NSTConfig(precision="fp16")
