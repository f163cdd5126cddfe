"""G and D: shapes at every resolution, conditioning that matters, and the §4.4 losses by hand."""

from __future__ import annotations

import math

import pytest
import torch

from culturelab.generation.cgan import (
    CGANConfig,
    CultureEncoder,
    Discriminator,
    Generator,
    d_loss,
    g_loss,
    minibatch_std,
    one_hot,
)

CULTURES = ["seigaiha", "girih", "kente"]


def small(resolution=32, **kw) -> CGANConfig:
    return CGANConfig(
        cultures=CULTURES, resolution=resolution, z_dim=16, g_channels=4, d_channels=4, culture_dim=8, **kw
    )


@pytest.mark.parametrize("resolution", [32, 64, 128])
def test_shapes_and_range(resolution):
    torch.manual_seed(0)
    cfg = small(resolution)
    g, d = Generator(cfg), Discriminator(cfg)
    c = one_hot(torch.tensor([0, 1, 2, 0]), 3)
    x = g(torch.randn(4, 16), c)
    assert x.shape == (4, 3, resolution, resolution)
    assert x.min() >= -1 and x.max() <= 1
    assert d(x, c).shape == (4,)


def test_unknown_resolution_and_too_few_cultures():
    with pytest.raises(ValueError, match="resolution"):
        small(48)
    with pytest.raises(ValueError, match="two cultures"):
        CGANConfig(cultures=["girih"])


def test_culture_changes_generator_and_discriminator_output():
    torch.manual_seed(0)
    cfg = small()
    g, d = Generator(cfg).eval(), Discriminator(cfg)
    # Give the (zero-initialised) conditional norms a non-trivial dependence on c, as training does.
    for module in g.modules():
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.normal_(module.weight, std=0.5)
    z = torch.randn(1, 16).repeat(3, 1)
    c = torch.eye(3)
    x = g(z, c)
    assert (x[0] - x[1]).abs().mean() > 1e-3 and (x[1] - x[2]).abs().mean() > 1e-3
    same = x[:1].repeat(3, 1, 1, 1)
    logits = d(same, c)
    assert len(set(logits.tolist())) == 3  # same image, three cultures: three different logits


def test_culture_encoder_is_linear_so_mixes_are_averages():
    enc = CultureEncoder(3, 5)
    a, b = torch.tensor([[1.0, 0, 0]]), torch.tensor([[0, 0, 1.0]])
    torch.testing.assert_close(enc(0.3 * a + 0.7 * b), 0.3 * enc(a) + 0.7 * enc(b))


def test_external_culture_vectors_are_fixed_buffers():
    cfg = small(culture_vectors=[[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    g = Generator(cfg)
    assert "culture.table" in dict(g.named_buffers())
    assert not any(name.endswith("table") for name, _ in g.named_parameters())
    torch.testing.assert_close(g.culture.table[2], torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match="one culture vector per culture"):
        small(culture_vectors=[[1.0], [2.0]])


def test_d_loss_matches_hand_computed_formula():
    """L_D = -E[log D(x,c)] - E[log(1 - D(G(z,c),c))] with D = sigmoid(logit), research design §4.4."""
    real, fake = torch.tensor([0.0, 2.0]), torch.tensor([-1.0, 1.0])
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    expected = -(math.log(sig(0.0)) + math.log(sig(2.0))) / 2 - (math.log(1 - sig(-1.0)) + math.log(1 - sig(1.0))) / 2
    assert d_loss(real, fake).item() == pytest.approx(expected, rel=1e-6)
    # At logit 0 D says 1/2 everywhere: L_D = 2 log 2.
    assert d_loss(torch.zeros(4), torch.zeros(4)).item() == pytest.approx(2 * math.log(2), rel=1e-6)


def test_g_loss_matches_hand_computed_formula():
    """L_G = -E[log D(G(z,c),c)], research design §4.4."""
    fake = torch.tensor([-2.0, 0.5, 3.0])
    expected = -sum(math.log(1 / (1 + math.exp(-v))) for v in fake.tolist()) / 3
    assert g_loss(fake).item() == pytest.approx(expected, rel=1e-6)


def test_losses_stay_finite_for_confident_discriminators():
    big = torch.tensor([100.0, -100.0])
    assert torch.isfinite(d_loss(big, -big)) and torch.isfinite(d_loss(-big, big)) and torch.isfinite(g_loss(-big))
    assert g_loss(torch.tensor([-100.0])).item() == pytest.approx(100.0)


def test_minibatch_std_groups_never_mix_real_and_fake():
    """D sees [real; fake] in one batch; what the fake half looks like must not change the real half's logits."""
    torch.manual_seed(0)
    d = Discriminator(small()).eval()  # eval: spectral norm's power iteration does not step between calls
    c = one_hot(torch.tensor([0, 1, 2, 0, 0, 1, 2, 0]), 3)
    real = torch.rand(4, 3, 32, 32)
    a = d(torch.cat([real, torch.rand(4, 3, 32, 32)]), c)
    b = d(torch.cat([real, torch.zeros(4, 3, 32, 32)]), c)
    torch.testing.assert_close(a[:4], b[:4])
    assert minibatch_std(torch.randn(8, 2, 4, 4)).shape == (8, 3, 4, 4)
