"""`fst optimize` (Gatys): end to end through the command line, and its helpers in-process.

Every CLI run is small (at most 64 px, few evaluations): each subprocess pays ~3 s importing torch.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from PIL import Image

from fst import FstError
from fst.images import load_image
from fst.losses import LossConfig
from fst.optimize import luminance, optimize

from conftest import vgg_convention

YIQ = np.array(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]], np.float64
)


def read_rgb(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), np.float64).transpose(2, 0, 1) / 255.0


def chroma(rgb: np.ndarray) -> np.ndarray:
    return np.tensordot(YIQ, rgb.astype(np.float64), axes=1)[1:]


def luma(rgb: np.ndarray) -> np.ndarray:
    return np.tensordot(YIQ, rgb.astype(np.float64), axes=1)[0]


def assert_one_line_error(rc: int, stderr: str, *fragments: str) -> None:
    assert rc == 2, (rc, stderr)
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip("\n").split("\n")
    assert len(lines) == 1, stderr
    assert lines[0].startswith("fst: error: "), stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, stderr)


# ------------------------------------------------------------------ CLI


def test_optimize_cli_lbfgs_reduces_the_style_loss(fst_cli, photo_paths, style_path, tmp_path):
    out = tmp_path / "kitten_starry.png"
    rc, stdout, stderr = fst_cli(
        "optimize", photo_paths[1], "--style", style_path, "--image-size", "64", "--iterations", "20", "--json",
        "-o", out,
    )
    assert rc == 0, stderr
    assert "Traceback" not in stderr and "Warning" not in stderr, stderr
    report = json.loads(stdout.strip())
    for key in ("initial", "final"):
        assert set(report[key]) == {"content", "style", "tv", "total"}
        assert all(np.isfinite(v) for v in report[key].values())
        assert report[key]["total"] == pytest.approx(
            report[key]["content"] + report[key]["style"] + report[key]["tv"], rel=1e-5
        )
    initial, final = report["initial"], report["final"]
    assert initial["content"] < 1e-4  # started from the content image
    assert final["style"] < initial["style"] / 3, report
    assert final["total"] < initial["total"] / 2, report
    assert report["evaluations"] == 20
    assert report["optimizer"] == "lbfgs"
    assert report["image_size"] == [64, 48]
    assert report["vgg"].startswith(vgg_convention() + ":")
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == (64, 48) and im.mode == "RGB"
        recorded = json.loads(im.text["fst"])
    assert recorded["final"] == report["final"] and recorded["loss"]["style_weight"] == 5.0
    result = read_rgb(out)
    content = load_image(photo_paths[1], long_side=64).rgb
    assert np.abs(result - content).mean() > 0.02  # it did change the picture
    assert 0.02 < result.std()  # and it is not a flat fill


@pytest.fixture(scope="module")
def plain_48(fst_cli, photo_paths, style_path, tmp_path_factory):
    """One small default run, shared: (output path, its stdout)."""
    out = tmp_path_factory.mktemp("plain") / "castle_starry.png"
    rc, stdout, stderr = fst_cli(
        "optimize", photo_paths[0], "--style", style_path, "--image-size", "48", "--iterations", "8", "--seed", "3",
        "-o", out,
    )
    assert rc == 0, stderr
    assert stdout.startswith(f"saved {out}: content ")
    return out


def test_optimize_cli_is_deterministic(fst_cli, plain_48, photo_paths, style_path, tmp_path):
    again = tmp_path / "again.png"
    rc, _, stderr = fst_cli(
        "optimize", photo_paths[0], "--style", style_path, "--image-size", "48", "--iterations", "8", "--seed", "3",
        "-o", again,
    )
    assert rc == 0, stderr
    assert np.array_equal(read_rgb(again), read_rgb(plain_48))
    assert again.read_bytes() == plain_48.read_bytes()


def test_optimize_cli_refuses_to_overwrite(fst_cli, plain_48, photo_paths, style_path):
    before = plain_48.read_bytes()
    start = time.perf_counter()
    rc, stdout, stderr = fst_cli(
        "optimize", photo_paths[0], "--style", style_path, "--image-size", "48", "--iterations", "8", "-o", plain_48
    )
    assert_one_line_error(rc, stderr, str(plain_48), "already exists", "--overwrite")
    assert stdout == ""
    assert plain_48.read_bytes() == before
    assert time.perf_counter() - start < 30  # refused up front, nothing optimized


def test_optimize_cli_adam_reduces_the_loss(fst_cli, photo_paths, style_path, tmp_path):
    out = tmp_path / "adam.jpg"
    rc, stdout, stderr = fst_cli(
        "optimize", photo_paths[2], "--style", style_path, "--image-size", "40", "--iterations", "12",
        "--optimizer", "adam", "--lr", "0.1", "--json", "-o", out,
    )
    assert rc == 0, stderr
    report = json.loads(stdout)
    assert report["optimizer"] == "adam" and report["evaluations"] == 12
    assert report["final"]["total"] < 0.8 * report["initial"]["total"], report
    assert report["final"]["style"] < report["initial"]["style"], report
    with Image.open(out) as im:
        assert im.format == "JPEG" and im.size == (40, 22)


def test_optimize_cli_preserve_color(fst_cli, plain_48, photo_paths, style_path, tmp_path):
    out = tmp_path / "preserved.png"
    rc, _, stderr = fst_cli(
        "optimize", photo_paths[0], "--style", style_path, "--image-size", "48", "--iterations", "8", "--seed", "3",
        "--preserve-color", "-o", out,
    )
    assert rc == 0, stderr
    result = read_rgb(out)
    content = load_image(photo_paths[0], long_side=48).rgb
    assert result.shape == content.shape == (3, 26, 48)
    unclipped = np.all((result > 0.01) & (result < 0.99), axis=0)
    assert unclipped.mean() > 0.8
    chroma_error = np.abs(chroma(result) - chroma(content))[:, unclipped]
    assert chroma_error.mean() < 0.006 and chroma_error.max() < 0.03, (chroma_error.mean(), chroma_error.max())
    # the plain run (same content, style and seed) takes the painting's colours instead
    plain_error = np.abs(chroma(read_rgb(plain_48)) - chroma(content)).mean()
    assert plain_error > 4 * chroma_error.mean(), (plain_error, chroma_error.mean())
    # the luminance is the stylized one, not the content's
    assert np.abs(luma(result) - luma(content)).mean() > 0.015


@pytest.mark.parametrize(
    "name, expected",
    [
        ("text", ("not an image",)),
        ("truncated", ("truncated",)),
        ("tiny", ("1x1", "too small")),
        ("bomb", ("100000x100000", "--max-pixels")),
        ("cmyk", None),
        ("grey16", None),
        ("rgba", None),
        ("grey8", None),
        ("exif_rotated", None),
    ],
)
def test_optimize_cli_on_awkward_content_images(fst_cli, bad_images, style_path, tmp_path, name, expected):
    path = bad_images[name]
    out = tmp_path / "out.png"
    start = time.perf_counter()
    rc, stdout, stderr = fst_cli(
        "optimize", path, "--style", style_path, "--image-size", "32", "--iterations", "2", "-o", out, timeout=90
    )
    seconds = time.perf_counter() - start
    assert "Traceback" not in stderr, stderr
    if rc == 0:
        assert expected is None, f"{name} should have been refused: {stdout}"
        with Image.open(out) as im:
            assert max(im.size) == 32
        if name == "exif_rotated":
            assert Image.open(out).size == (21, 32)  # portrait, as displayed
    else:
        assert_one_line_error(rc, stderr, str(path))
        assert not out.exists()
    if expected is not None:
        assert_one_line_error(rc, stderr, str(path), *expected)
    if name == "bomb":
        assert seconds < 30  # decided from the header: import time only
    if name in ("cmyk", "rgba", "grey8", "exif_rotated"):
        assert rc == 0, stderr  # odd but valid pictures are accepted


# ------------------------------------------------------------------ in-process helpers


def test_luminance():
    rgb = np.zeros((3, 2, 3), np.float32)
    rgb[0, 0, 0] = 1.0  # red
    rgb[1, 0, 1] = 1.0  # green
    rgb[2, 0, 2] = 1.0  # blue
    rgb[:, 1, :] = 0.5  # grey row
    y = luminance(rgb)
    assert y.shape == (3, 2, 3) and y.dtype == np.float32
    np.testing.assert_array_equal(y[0], y[1])
    np.testing.assert_array_equal(y[1], y[2])
    np.testing.assert_allclose(y[0, 0], [0.299, 0.587, 0.114], rtol=1e-6)
    np.testing.assert_allclose(y[0, 1], 0.5, rtol=1e-6)  # grey stays grey
    white = np.ones((3, 4, 4), np.float32)
    np.testing.assert_allclose(luminance(white), 1.0, rtol=1e-6)


def test_optimize_from_noise(photo_paths, style_path, loss_network):
    common = dict(image_size=32, iterations=6, device="cpu", progress=False, init="noise")
    a, report_a = optimize(photo_paths[2], [style_path], LossConfig(), seed=1, **common)
    b, _ = optimize(photo_paths[2], [style_path], LossConfig(), seed=2, **common)
    a_again, _ = optimize(photo_paths[2], [style_path], LossConfig(), seed=1, **common)
    assert a.shape == (3, 18, 32) and a.dtype == np.float32
    assert 0 < a.min() and a.max() < 1  # the sigmoid parametrisation keeps pixels inside (0, 1)
    # a noise start is far from the content, and the optimizer pulls it toward the loss's optimum
    assert report_a["initial"]["content"] > 0.3
    assert report_a["final"]["total"] < 0.7 * report_a["initial"]["total"], report_a
    assert report_a["final"]["content"] < report_a["initial"]["content"], report_a
    assert report_a["final"]["tv"] < report_a["initial"]["tv"], report_a  # the noise is being smoothed
    np.testing.assert_array_equal(a, a_again)  # same seed, same noise
    assert np.abs(a - b).mean() > 0.01  # another seed, another start
    # still white-noise-like start: the initial TV of uniform noise is ~2 * 2 * var = 1/3
    assert report_a["initial"]["tv"] / LossConfig().tv_weight == pytest.approx(1 / 3, rel=0.15)


def test_optimize_rejects_bad_arguments(photo_paths, style_path, bad_images):
    with pytest.raises(FstError, match="lbfgs or adam"):
        optimize(photo_paths[0], [style_path], LossConfig(), image_size=32, iterations=1, optimizer="sgd",
                 device="cpu", progress=False)
    with pytest.raises(FstError, match="too small"):
        optimize(photo_paths[0], [str(bad_images["tiny"])], LossConfig(), image_size=32, iterations=1,
                 device="cpu", progress=False)
