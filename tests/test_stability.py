"""The training-time stability term (fst.stability): what it measures, and that training lowers it."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from fst.stability import MAX_SHIFT, NOISE, move, random_motion, stability_term
from fst.train import train

from test_train import photo_dir, tiny_config  # noqa: F401  (the fixture)


def test_motion_is_small_and_moves_a_picture_as_it_says():
    """A pure shift by (dx, dy) px moves a smooth picture by that much, and every random motion stays
    within MAX_SHIFT + the rotation's and zoom's move at the corners (1 deg, 1 % of 64 px: ~1.1 px)."""
    torch.manual_seed(0)
    h, w = 48, 64
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    picture = (xx * 0.01 + yy * 0.02)[None, None]  # a ramp: resampling it is exact in the interior
    shift = torch.tensor([[[1.0, 0.0, 1.5 * 2 / w], [0.0, 1.0, -0.5 * 2 / h]]])
    moved = move(picture, shift)[..., 4:-4, 4:-4]
    # sampling at x + 1.5, y - 0.5: the ramp's value there
    expected = ((xx + 1.5) * 0.01 + (yy - 0.5) * 0.02)[None, None][..., 4:-4, 4:-4]
    assert torch.allclose(moved, expected, atol=1e-4)
    theta = random_motion(256, h, w)
    grid = F.affine_grid(theta, [256, 1, h, w], align_corners=False)
    identity = F.affine_grid(torch.eye(2, 3)[None].expand(256, 2, 3), [256, 1, h, w], align_corners=False)
    px = (grid - identity) * torch.tensor([w / 2, h / 2])
    largest = px.norm(dim=-1).amax()
    assert MAX_SHIFT * 0.9 < largest < MAX_SHIFT * 2 ** 0.5 + 1.2


def test_term_is_the_noise_for_a_network_that_moves_with_the_picture():
    """f = identity commutes with any motion: what is left is the noise, NOISE^2 in mean square (a little
    less where the clamp to [0, 1] cuts it; the photos here stay within 0.2..0.8). A network that paints
    a fixed pattern, whatever the photo, does not move with it: a term many times larger."""
    torch.manual_seed(1)
    photos = 0.2 + 0.6 * torch.rand(4, 3, 40, 56)
    photos = F.avg_pool2d(photos, 5, 1, 2)  # smooth, so the bilinear resampling is near exact
    identity = lambda x, style=None: x  # noqa: E731
    term = float(stability_term(identity, photos, photos))
    assert term == pytest.approx(NOISE ** 2, rel=0.1)
    pattern = torch.rand(1, 3, 40, 56)
    painter = lambda x, style=None: pattern.expand_as(x)  # noqa: E731
    assert float(stability_term(painter, photos, painter(photos))) > 20 * NOISE ** 2


def test_training_with_the_term_logs_it_and_resumes_exactly(tmp_path, photo_dir):  # noqa: F811
    """--stability-weight: the term is in the log and in the final loss; its random motions come from
    the checkpointed RNG, so a resumed run is identical to a straight one."""
    straight = train(tiny_config(tmp_path / "a", photo_dir, steps=4, stability_weight=50.0), log=lambda *a: None)
    train(tiny_config(tmp_path / "b", photo_dir, steps=2, stability_weight=50.0), log=lambda *a: None)
    resumed = train(tiny_config(tmp_path / "b", photo_dir, steps=4, stability_weight=50.0),
                    resume=str(tmp_path / "b" / "run" / "checkpoint.pth"), log=lambda *a: None)
    a, b = (torch.load(p, weights_only=True) for p in (straight, resumed))
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert set(a["meta"]["final_loss"]) == {"content", "style", "tv", "stability", "total"}
    logged = [json.loads(line) for line in (tmp_path / "a" / "run" / "log.jsonl").read_text().splitlines()]
    assert all(line["stability"] > 0 for line in logged)
    assert a["meta"]["config"]["stability_weight"] == 50.0


def test_the_term_lowers_what_it_measures(tmp_path, photo_dir):  # noqa: F811
    """The same tiny run with and without the term, from the same start: with it, the network's own
    stability term on the same photos and motions ends lower (the term's gradient does its job). At
    weight 1e4 the term is ~5 against a style term of ~3. Seeds 0, 1, 2 gave 0.64x, 0.28x, 0.44x the
    control's; a term that did nothing would give ~1x (run-to-run spread of the tiny network: 2-4x
    between seeds, hence the same seed for both runs)."""
    from fst.transformer import load_model

    paths = {w: train(tiny_config(tmp_path / str(w), photo_dir, steps=30, lr=1e-2, stability_weight=w), log=lambda *a: None)
             for w in (0.0, 1e4)}
    torch.manual_seed(5)
    photos = torch.rand(4, 3, 48, 48)
    photos = F.avg_pool2d(photos, 3, 1, 1)
    terms = {}
    for w, path in paths.items():
        net, _ = load_model(path)
        torch.manual_seed(7)  # the same motions and noise for both
        with torch.no_grad():
            terms[w] = float(stability_term(net, photos, net(photos)))
    assert terms[1e4] < 0.8 * terms[0.0]
