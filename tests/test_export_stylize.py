"""fst export (ONNX parity, metadata, fp16/int8) and fst stylize (CLI, tiling, README snippet)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from PIL import Image

from conftest import FIXTURES, PHOTOS, REPO, run_fst
from fst.export import CONVENTION
from fst.images import load_image, preserve_color
from fst.stylize import OnnxStylizer, stylize_array, stylize_tiled
from fst.styles import DEFAULT_STYLE, shipped_files
from fst.transformer import TransformerNet

SHIPPED_ONNX = shipped_files(DEFAULT_STYLE)["onnx"]


@pytest.fixture(scope="module")
def model_pth(tmp_path_factory) -> Path:
    """A model file in fst's format: the default architecture, with perturbed weights."""
    torch.manual_seed(0)
    net = TransformerNet()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    path = tmp_path_factory.mktemp("model") / "toy.pth"
    meta = {"name": "toy", "styles": ["toy.jpg"], "architecture": net.architecture(), "steps": 0}
    torch.save({"model": net.state_dict(), "meta": meta}, path)
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, dict]:
    """The shipped default model exported again, with its fp16 and int8 variants."""
    out = tmp_path_factory.mktemp("onnx") / "toy.onnx"
    code, stdout, stderr = run_fst("export", shipped_files(DEFAULT_STYLE)["pth"], "-o", out, "--fp16", "--int8",
                                   "--calibration", FIXTURES, timeout=600)
    assert code == 0, stderr
    return out, json.loads(stdout.strip().splitlines()[-1])


def test_export_verifies_parity_and_writes_metadata(exported):
    path, report = exported
    assert report["max_abs_diff"] < 0.05  # ORT vs PyTorch, 0..255 scale, at 64x97, 256x256, 721x1280
    model = onnx.load(path)
    onnx.checker.check_model(model)
    assert model.opset_import[0].version >= 17
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["fst.convention"] == CONVENTION
    assert meta["fst.style"] == DEFAULT_STYLE and meta["fst.version"]
    assert json.loads(meta["fst.training"])["steps"] > 0
    assert json.loads(meta["fst.architecture"]) == {"channels": 16, "res_blocks": 5}
    # dynamic batch, height and width, sizes not multiples of 4, 0..255 in and out
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = (np.random.default_rng(0).random((2, 3, 37, 50)) * 255).astype(np.float32)
    y = session.run(None, {"input": x})[0]
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 255 and y.max() - y.min() > 100
    net = TransformerNet()
    net.load_state_dict(torch.load(shipped_files(DEFAULT_STYLE)["pth"], weights_only=True)["model"])
    with torch.no_grad():
        ref = net.eval()(torch.from_numpy(x) / 255).numpy() * 255
    assert np.abs(ref - y).max() < 0.05


def test_fp16_and_int8_variants_report_size_speed_and_quality(exported):
    path, report = exported
    for kind, min_psnr in (("fp16", 45.0), ("int8", 28.0)):
        variant = path.with_name(f"toy.{kind}.onnx")
        assert variant.exists()
        r = report[kind]
        assert r["psnr_db"] > min_psnr, (kind, r)
        assert r["size_kb"] < r["fp32_size_kb"] * 0.75
        assert r["seconds_512"] > 0 and r["fp32_seconds_512"] > 0


def test_export_refuses_to_overwrite(exported, model_pth):
    """model_pth: any file in fst's format will do to check the refusal."""
    path, _ = exported
    before = path.read_bytes()
    code, _, stderr = run_fst("export", model_pth, "-o", path)
    assert code == 2 and "already exists" in stderr and "Traceback" not in stderr
    assert path.read_bytes() == before
    code, _, stderr = run_fst("export", FIXTURES / PHOTOS[0], "-o", path.with_name("x.onnx"))
    assert code == 2 and "not an fst model" in stderr


def test_stylize_one_file_uses_the_default_style_without_torch(tmp_path):
    out = tmp_path / "castle.png"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "fst", "stylize", str(FIXTURES / PHOTOS[0]), "-o", str(out)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-500:]
    imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if "import time:" in line}
    assert "onnxruntime" in imported and "torch" not in imported
    src, dst = load_image(FIXTURES / PHOTOS[0]).rgb, load_image(out).rgb
    assert dst.shape == src.shape
    assert np.abs(dst - src).mean() > 0.05  # it changed the picture


def test_stylize_folder_alpha_exif_strength_and_bad_files(tmp_path, bad_images):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    Image.open(FIXTURES / PHOTOS[1]).save(folder / "kitten.jpg")
    rgba = Image.open(FIXTURES / PHOTOS[2]).convert("RGBA")
    alpha = np.tile(np.linspace(0, 255, rgba.width).astype(np.uint8), (rgba.height, 1))
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(folder / "sub" / "butterfly.png")
    (folder / "sub" / "exif.jpg").write_bytes(bad_images["exif_rotated"].read_bytes())
    (folder / "broken.jpg").write_bytes(bad_images["truncated"].read_bytes())
    out = tmp_path / "out"
    code, _, stderr = run_fst("stylize", folder, "-o", out, "-m", SHIPPED_ONNX)
    assert code == 1  # one failure...
    errors = [line for line in stderr.splitlines() if line.startswith("fst: error:")]
    assert len(errors) == 1 and "broken.jpg" in errors[0] and "Traceback" not in stderr
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.png")) == ["kitten.png", "sub/butterfly.png", "sub/exif.png"]
    styled = Image.open(out / "sub" / "butterfly.png")  # ...the rest done, in the inputs' tree
    assert styled.mode == "RGBA" and np.array_equal(np.asarray(styled)[..., 3], alpha)  # alpha passed through
    assert Image.open(out / "sub" / "exif.png").size == (40, 60)  # EXIF orientation applied
    # never overwrite without --overwrite
    code, _, stderr = run_fst("stylize", folder / "kitten.jpg", "-o", out / "kitten.png", "-m", SHIPPED_ONNX)
    assert code == 2 and "already exists" in stderr


def test_strength_preserve_color_and_max_size():
    stylizer = OnnxStylizer(str(SHIPPED_ONNX))
    rgb = load_image(FIXTURES / PHOTOS[0], long_side=128).rgb
    full = stylize_array(stylizer, rgb)
    assert np.abs(stylize_array(stylizer, rgb, strength=0.0) - rgb).max() < 1e-6
    half = stylize_array(stylizer, rgb, strength=0.5)
    assert np.allclose(half, 0.5 * full + 0.5 * rgb, atol=1e-5)
    kept = stylize_array(stylizer, rgb, preserve_colors=True)
    assert np.allclose(kept, preserve_color(rgb, full), atol=1e-6)


def test_cli_max_size_and_backends_agree(tmp_path):
    pth = shipped_files(DEFAULT_STYLE)["pth"]
    a, b = tmp_path / "onnx.png", tmp_path / "torch.png"
    assert run_fst("stylize", FIXTURES / PHOTOS[1], "-m", pth, "-o", a, "--max-size", "100")[0] == 0
    assert run_fst("stylize", FIXTURES / PHOTOS[1], "-m", pth, "-o", b, "--max-size", "100", "--backend", "torch")[0] == 0
    ia, ib = np.asarray(Image.open(a), dtype=np.float32), np.asarray(Image.open(b), dtype=np.float32)
    assert max(Image.open(a).size) == 100
    assert np.abs(ia - ib).max() <= 2  # same network, two runtimes (8-bit rounding)


def _block_means(img: np.ndarray, block: int) -> np.ndarray:
    c, h, w = img.shape
    img = img[:, : h - h % block, : w - w % block]
    return img.reshape(c, h // block, block, w // block, block).mean(axis=(2, 4))


def test_tiles_have_no_seams_and_no_tone_difference():
    stylizer = OnnxStylizer(str(SHIPPED_ONNX))
    photo = load_image(FIXTURES / PHOTOS[0]).rgb  # 320 px wide
    big = np.clip(np.concatenate([photo, photo[:, :, ::-1]], axis=2), 0, 1)  # 640 wide
    whole = stylizer(big)
    tiled = stylize_tiled(stylizer, big, tile=192, guide_side=big.shape[2])
    assert tiled.shape == big.shape
    # tone: each 64-px block of the tiled result has nearly the mean colour of the untiled one
    diff = np.abs(_block_means(tiled, 64) - _block_means(whole, 64))
    assert diff.max() < 0.08 and diff.mean() < 0.03
    # seams: the horizontal gradient along tile boundaries is no stronger than elsewhere
    grad = np.abs(np.diff(tiled, axis=2)).mean(axis=(0, 1))
    boundaries = [x - 1 for x in (192 - 24, 2 * (192 - 24), 3 * (192 - 24))]
    assert max(grad[b] for b in boundaries) < 1.5 * np.median(grad) + 0.02
    # and the naive way (no tone matching, no feathering) is measurably worse
    naive = np.zeros_like(big)
    for left in range(0, big.shape[2], 192):
        naive[:, :, left : left + 192] = stylizer(big[:, :, left : left + 192])
    naive_diff = np.abs(_block_means(naive, 64) - _block_means(whole, 64))
    assert naive_diff.mean() > diff.mean()


def test_cli_tile_on_a_large_image(tmp_path):
    big = tmp_path / "big.jpg"
    Image.open(FIXTURES / PHOTOS[0]).resize((1200, 800)).save(big, quality=92)
    out = tmp_path / "big_out.jpg"
    code, _, stderr = run_fst("stylize", big, "-o", out, "--tile", "256")
    assert code == 0, stderr
    assert Image.open(out).size == (1200, 800)


def test_readme_collection_snippet_mixes_two_styles(tmp_path):
    """README's collection snippet, as printed: the 0.6/0.4 mix it asks for is what it writes."""
    match = re.search(r"<!-- onnx-collection-snippet -->\s*```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert match, "README lacks the collection snippet"
    collection = shipped_files("classics")["onnx"]
    (tmp_path / "photo.jpg").write_bytes((FIXTURES / PHOTOS[1]).read_bytes())
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "classics.onnx").write_bytes(collection.read_bytes())
    proc = subprocess.run([sys.executable, "-c", match.group(1)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-800:]
    out = np.asarray(Image.open(tmp_path / "mixed.jpg"), np.float32)
    stylizer = OnnxStylizer(str(collection))
    photo = np.asarray(Image.open(tmp_path / "photo.jpg").convert("RGB"), np.float32).transpose(2, 0, 1) / 255

    def as_snippet_writes(rgb):  # the same rounding and the same JPEG encoder as the snippet
        Image.fromarray((rgb.transpose(1, 2, 0) * 255).round().astype(np.uint8)).save(tmp_path / "ref.jpg")
        return np.asarray(Image.open(tmp_path / "ref.jpg"), np.float32)

    stylizer.choose(mix="starry_night=0.6,the_scream=0.4")
    mixed = np.abs(out - as_snippet_writes(stylizer(photo))).mean()
    stylizer.choose("starry_night")
    pure = np.abs(out - as_snippet_writes(stylizer(photo))).mean()
    assert mixed < 0.5 and pure > 5, (mixed, pure)  # the mix, to rounding (of 255); another style is far


def test_readme_onnx_snippet_runs_without_fst_or_torch(tmp_path):
    """README's snippet, exactly as printed there, with only onnxruntime, numpy and Pillow."""
    readme = (REPO / "README.md").read_text()
    match = re.search(r"<!-- onnx-snippet -->\s*```python\n(.*?)```", readme, re.S)
    assert match, "README lacks the ONNX Runtime snippet"
    snippet = match.group(1)
    assert "import fst" not in snippet and "torch" not in snippet
    (tmp_path / "photo.jpg").write_bytes((FIXTURES / PHOTOS[1]).read_bytes())
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / f"{DEFAULT_STYLE}.onnx").write_bytes(SHIPPED_ONNX.read_bytes())
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", snippet], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-800:]
    imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if "import time:" in line}
    assert "fst" not in imported and "torch" not in imported
    out = load_image(tmp_path / "stylized.jpg").rgb
    src = load_image(tmp_path / "photo.jpg").rgb
    assert out.shape == src.shape and np.abs(out - src).mean() > 0.05
