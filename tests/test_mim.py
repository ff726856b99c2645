"""Masked image modelling (SimMIM-style): masking, patch order, and a loss that counts masked patches only."""
import pytest
import torch

from cl_lib.methods import mim
from cl_lib.vit import VisionTransformer, ViTConfig


@pytest.mark.parametrize("ratio,block,grid", [(0.6, 1, 8), (0.5, 2, 8), (0.75, 2, 4), (0.25, 1, 4)])
def test_mask_covers_the_requested_fraction(ratio, block, grid):
    m = mim.random_mask(16, grid, ratio, block=block, generator=torch.Generator().manual_seed(0))
    assert m.shape == (16, grid * grid) and m.dtype == torch.bool
    cells = (grid // block) ** 2
    expected = round(ratio * cells) * block * block
    assert (m.sum(1) == expected).all()  # exactly, in every image
    assert not (m == m[0]).all()  # and not the same mask for every image


def test_mask_blocks_are_whole():
    m = mim.random_mask(4, 8, 0.5, block=2, generator=torch.Generator().manual_seed(1)).view(4, 8, 8)
    blocks = m.view(4, 4, 2, 4, 2)
    assert (blocks.all(dim=(2, 4)) | (~blocks).all(dim=(2, 4))).all()  # each 2x2 cell all masked or all kept


def test_mask_rejects_bad_input():
    with pytest.raises(ValueError, match="ratio"):
        mim.random_mask(2, 8, 1.0)
    with pytest.raises(ValueError, match="divide"):
        mim.random_mask(2, 8, 0.5, block=3)


def test_patchify_follows_the_token_order():
    img = torch.arange(2 * 3 * 4 * 4, dtype=torch.float).view(2, 3, 4, 4)
    p = mim.patchify(img, 2)
    assert p.shape == (2, 4, 12)
    # token 1 = top-right patch; its first pixel (row 0, col 2), channels last
    assert p[0, 1, :3].tolist() == [img[0, 0, 0, 2].item(), img[0, 1, 0, 2].item(), img[0, 2, 0, 2].item()]
    # token 2 = bottom-left patch, pixel (row 2, col 0), channel 0
    assert p[1, 2, 0].item() == img[1, 0, 2, 0].item()


def test_masked_l1_hand_worked():
    target = torch.zeros(1, 3, 2)
    pred = torch.tensor([[[1.0, 3.0], [10.0, 10.0], [0.5, 0.5]]])
    mask = torch.tensor([[True, False, True]])
    # masked patches 0 and 2: mean |.| per patch = 2.0 and 0.5 → mean 1.25; patch 1 (error 10) is ignored
    assert mim.masked_l1(pred, target, mask).item() == pytest.approx(1.25)


def test_loss_ignores_unmasked_predictions():
    torch.manual_seed(0)
    pred, target = torch.randn(2, 5, 4), torch.randn(2, 5, 4)
    mask = torch.tensor([[True, False, True, False, False], [False, True, False, False, True]])
    base = mim.masked_l1(pred, target, mask)
    changed = pred.clone()
    changed[~mask] += 100.0
    assert torch.equal(mim.masked_l1(changed, target, mask), base)
    changed[0, 0] += 1.0  # a masked one does count
    assert mim.masked_l1(changed, target, mask) > base


def test_simmim_gradient_reaches_only_through_masked_patches():
    """The loss is read at masked patches only (zero gradient on every visible patch's prediction), and a masked
    patch's own pixels never reach the encoder (it sees the mask token): only the target uses them."""
    torch.manual_seed(0)
    model = mim.SimMIM(VisionTransformer(ViTConfig(img_size=8, patch=4, dim=16, depth=1, heads=2)))
    x = torch.randn(2, 3, 8, 8)
    mask = torch.tensor([[True, False, False, False], [False, False, False, True]])
    preds = []

    def keep(module, inputs, out):
        out.retain_grad()
        preds.append(out)

    hook = model.head.register_forward_hook(keep)
    model(x, mask).backward()
    hook.remove()
    g = preds[0].grad.abs().sum(-1)  # (batch, patches): gradient reaching each patch's prediction
    assert (g[~mask] == 0).all(), "a visible patch's prediction feeds the loss"
    assert (g[mask] > 0).all(), "a masked patch's prediction does not feed the loss"
    assert model.encoder.mask_token.grad.abs().sum() > 0  # the mask token is used and trained
    x2 = x.clone()
    x2[0, :, :4, :4] += 10.0  # change the pixels of image 0's masked patch 0 only
    with torch.no_grad():
        a, b = (model.encoder.tokens(xi, mask=mask) for xi in (x, x2))
    assert torch.allclose(a, b), "a masked patch's pixels reached the encoder"


def test_fit_mim_lowers_the_loss_and_is_deterministic():
    def run():
        torch.manual_seed(0)
        model = mim.SimMIM(VisionTransformer(ViTConfig(img_size=8, patch=4, dim=16, depth=1, heads=2)))
        x = torch.randn(1, 3, 8, 8).repeat(16, 1, 1, 1)
        opt = torch.optim.Adam(model.parameters(), lr=2e-2)
        return mim.fit_mim(model, x, epochs=8, optimizer=opt, ratio=0.5, batch_size=16, seed=0)

    h1, h2 = run(), run()
    assert h1 == h2
    assert h1[-1] < 0.7 * h1[0]


def test_reconstruct_keeps_visible_patches():
    torch.manual_seed(0)
    model = mim.SimMIM(VisionTransformer(ViTConfig(img_size=8, patch=4, dim=16, depth=1, heads=2)))
    x = torch.randn(2, 3, 8, 8)
    mask = torch.tensor([[True, False, False, False], [False, True, True, False]])
    out = mim.reconstruct(model, x, mask)
    assert out.shape == x.shape
    assert torch.equal(out[0, :, 4:, :], x[0, :, 4:, :])  # patches 2, 3 of image 0 are visible
    assert not torch.allclose(out[0, :, :4, :4], x[0, :, :4, :4])  # patch 0 was replaced


def test_normalised_patch_targets_by_hand():
    patches = torch.tensor([[[1.0, 3.0, 1.0, 3.0]]])  # mean 2, unbiased variance 4/3
    out = mim.normalise_patches(patches, eps=0.0)
    assert torch.allclose(out, torch.tensor([[[-1.0, 1.0, -1.0, 1.0]]]) / (4 / 3) ** 0.5)
    model = mim.SimMIM(VisionTransformer(ViTConfig(img_size=8, patch=4, dim=16, depth=1, heads=2)), norm_pix=True)
    images = torch.randn(2, 3, 8, 8)
    target = model.target(images)
    assert torch.allclose(target.mean(-1), torch.zeros(2, 4), atol=1e-5)
    assert torch.allclose(target.var(-1), torch.ones(2, 4), atol=1e-3)
    mask = torch.tensor([[True, False, False, True]] * 2)
    recon = mim.reconstruct(model, images, mask)  # unmasked patches come back as they were
    keep = ~mask.view(2, 2, 2).repeat_interleave(4, 1).repeat_interleave(4, 2)
    assert torch.equal(recon.permute(0, 2, 3, 1)[keep], images.permute(0, 2, 3, 1)[keep])
