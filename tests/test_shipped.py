"""The shipped styles: every model loads, runs, and moves a photo toward its painting's style."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from conftest import FIXTURES, PHOTOS, run_fst
from fst.images import load_image
from fst.losses import LossConfig, PerceptualLoss, load_style_image
from fst.stylize import OnnxStylizer
from fst.styles import DEFAULT_STYLE, SHIPPED, available_styles, shipped_files
from fst.transformer import load_model

# Photos the shipped styles' training runs held out (tests/fixtures/CREDITS.md): never trained on.
HELD_OUT = sorted((FIXTURES / "held_out").glob("*.jpg"))


def test_four_styles_are_shipped():
    assert len(SHIPPED) >= 4 and DEFAULT_STYLE in SHIPPED
    assert available_styles() == list(SHIPPED)
    for name in SHIPPED:
        files = shipped_files(name)
        for kind, path in files.items():
            assert path.exists(), path
        assert files["onnx"].stat().st_size < 4 * 1024 * 1024 and files["pth"].stat().st_size < 4 * 1024 * 1024


@pytest.mark.parametrize("name", list(SHIPPED))
def test_shipped_model_moves_photos_toward_its_style(name, loss_network):
    files = shipped_files(name)
    net, meta = load_model(str(files["pth"]))
    assert meta["name"] == name and meta["steps"] > 0
    onnx_meta = {p.key: p.value for p in onnx.load(files["onnx"]).metadata_props}
    assert onnx_meta["fst.style"] == name
    stylizer = OnnxStylizer(str(files["onnx"]))
    style_size = meta["config"]["style_size"]
    loss_config = LossConfig.from_dict(meta["config"]["loss"])
    painting = torch.from_numpy(load_style_image(files["painting"], style_size, loss_config))[None]
    criterion = PerceptualLoss(loss_network, [painting], loss_config)
    assert {p.name for p in HELD_OUT} == set(meta["held_out"])
    for i, photo_path in enumerate(HELD_OUT):
        photo_name = photo_path.name
        photo = load_image(photo_path, long_side=256).rgb
        styled = stylizer(photo)
        # ONNX and the .pth are the same network
        with torch.no_grad():
            ref = net(torch.from_numpy(photo)[None])[0].numpy()
        assert np.abs(ref - styled).max() < 1e-3
        # another photo, stylized, at this one's size: what "subject gone" would score
        other = load_image(HELD_OUT[(i + 1) % len(HELD_OUT)], size=(photo.shape[2], photo.shape[1])).rgb
        t = {k: torch.from_numpy(v)[None] for k, v in (("photo", photo), ("styled", styled), ("other", stylizer(other)))}
        with torch.no_grad():
            before = float(criterion.style_loss_per_image(t["photo"]))
            after = float(criterion.style_loss_per_image(t["styled"]))
            content = float(criterion(t["styled"], t["photo"])["content"])
            unrelated = float(criterion(t["other"], t["photo"])["content"])
        assert after < before / 3, (name, photo_name, before, after)
        assert content < 0.75 * unrelated, (name, photo_name, content, unrelated)  # the subject is still there


@pytest.mark.parametrize("name", list(SHIPPED))
def test_no_lines_along_the_borders(name):
    """The outermost rows and columns look like their neighbours inside (VGG's zero padding once
    taught the networks bright lines 1-2 px from the edges: fst.vgg's border pad prevents it)."""
    stylizer = OnnxStylizer(str(shipped_files(name)["onnx"]))
    sides = {"left": [], "right": [], "top": [], "bottom": []}
    for photo_name in PHOTOS:
        y = stylizer(load_image(FIXTURES / photo_name, long_side=256).rgb)
        cols, rows = y.mean(axis=(0, 1)), y.mean(axis=(0, 2))
        sides["left"].append(cols[:12])
        sides["right"].append(cols[::-1][:12])
        sides["top"].append(rows[:12])
        sides["bottom"].append(rows[::-1][:12])
    for side, profiles in sides.items():
        profile = np.mean(profiles, axis=0)  # mean brightness of line k from this edge, k = 0..11
        inside = profile[6:12].mean()
        assert np.abs(profile[:4] - inside).max() < 0.045, (name, side, profile.round(3))


def test_styles_command_lists_them_with_sources():
    code, out, err = run_fst("styles", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["name"] for r in rows] == list(SHIPPED)
    assert sum(r["default"] for r in rows) == 1
    assert all(r["artist"] and r["painting"] and "onnx" in r for r in rows)
    assert [r["painting"] for r in rows] == [info["painting"] for info in SHIPPED.values()]  # titles, not paths
    assert all(r["painting_file"].endswith(f"{r['name']}.jpg") for r in rows)
    code, out, _ = run_fst("styles")
    assert code == 0 and "Hokusai" in out and "* default" in out


def test_gallery_command(tmp_path):
    code, out, err = run_fst("gallery", FIXTURES / PHOTOS[0], "-o", tmp_path / "g", "--image-size", "128")
    assert code == 0, err
    written = sorted(p.name for p in (tmp_path / "g").iterdir())
    assert written == sorted(["photo.jpg"] + [f"{n}.jpg" for n in SHIPPED] + [f"painting_{n}.jpg" for n in SHIPPED])
    assert out.count("|") > 10
    code, _, err = run_fst("gallery", FIXTURES / PHOTOS[0], "-o", tmp_path / "g", "--image-size", "128")
    assert code == 2 and "already exists" in err


def test_evaluate_command_reports_the_style_ratio():
    code, out, err = run_fst("evaluate", DEFAULT_STYLE, "--photos", FIXTURES / PHOTOS[0], FIXTURES / PHOTOS[1],
                             "--image-size", "192", "--json")
    assert code == 0, err
    (report,) = json.loads(out)
    assert [r["photo"] for r in report["photos"]] == PHOTOS[:2]
    for row in report["photos"]:
        assert row["style_ratio"] == pytest.approx(row["style_output"] / row["style_photo"])
        assert row["style_ratio"] < 1 / 3 and row["content"] > 0
    code, out, err = run_fst("evaluate", DEFAULT_STYLE, "--photos", FIXTURES, "--held-out", "--json")
    assert code == 0, err
    (report,) = json.loads(out)
    assert sorted(r["photo"] for r in report["photos"]) == [p.name for p in HELD_OUT]
    code, _, err = run_fst("evaluate", DEFAULT_STYLE, "--photos", FIXTURES / "held_out" / "nothing*.jpg")
    assert code == 2 and "matches no file" in err
