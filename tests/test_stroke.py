"""`fst stylize --stroke-scale S` (fst/strokes.py): larger strokes on large photos, edges kept sharp.

Real shipped ONNX models through fst.stylize.load_stylizer, on real photos: the test fixtures and
`large/nuthatch_cut.jpg`, a 640x400 cut at full resolution from the 4000-px photo of README's example.
"""

from __future__ import annotations

import io
import math
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from conftest import FIXTURES, run_fst
from stroke_growth import NUTHATCH, SCALES, growth
from fst import FstError
from fst.images import load_image, resize_array
from fst.serve.errors import ApiError
from fst.serve.jobs import run_job
from fst.serve.parsing import parse_params
from fst.strokes import box_mean, guided_upsample, luminance, upsample_bilinear, working_size
from fst.stylize import MIN_SIDE, load_stylizer, stylize_array, stylize_tiled

CASTLE = FIXTURES / "chenonceau_castle.jpg"
_YIQ = np.array([[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]], np.float32)


@pytest.fixture(scope="module")
def starry():
    return load_stylizer("starry_night")


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return load_image(NUTHATCH).rgb


def test_scale_one_is_the_pipeline_as_before(starry, photo, tmp_path):
    before = np.clip(starry(photo), 0.0, 1.0).astype(np.float32)  # what stylize_array computed before
    assert np.array_equal(stylize_array(starry, photo), before)
    assert np.array_equal(stylize_array(starry, photo, stroke_scale=1.0), before)
    # and the command writes the same bytes with --stroke-scale 1 as without it
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    assert run_fst("stylize", CASTLE, "-o", a)[0] == 0
    assert run_fst("stylize", CASTLE, "-o", b, "--stroke-scale", "1")[0] == 0
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize("scale", [2.5, 16.0])
def test_output_has_the_input_size(starry, photo, scale):
    odd = photo[:, 3:124, 5:338]  # 333x121: sizes that do not divide
    out = stylize_array(starry, odd, stroke_scale=scale)  # 16: the working size stops at MIN_SIDE
    assert out.shape == odd.shape and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert working_size(333, 121, scale, MIN_SIDE) == ((133, 48) if scale == 2.5 else (21, MIN_SIDE))


def test_box_mean_is_the_window_mean_cut_at_the_borders():
    x = np.random.default_rng(0).random((2, 7, 9)).astype(np.float32)
    m = box_mean(x, 1)
    assert np.isclose(m[1, 3, 4], x[1, 2:5, 3:6].mean()) and np.isclose(m[0, 0, 0], x[0, :2, :2].mean())
    assert np.isclose(m[0, 6, 8], x[0, 5:, 7:].mean())


def test_strokes_grow_with_the_scale(starry, photo):
    """A texture magnified S times has its spectrum moved down by log2(S) octaves.

    Two controls keep the guided filter's own smoothing out of the effect measured
    (stroke_growth.growth):
    - filter only: the S = 1 stylization through the same guided filter at full size (it smooths
      the network's 2-px grain away, which alone moves the centre up by about an octave here);
      against it the strokes must move at least half the ideal log2(S): the photo's own edges,
      put back at full size by the guide, stay where they are and pull the centre back.
    - resampled: the S = 1 stylization shrunk to the working size and guided back up, i.e. what
      S would give if the network painted the same strokes at any size (merely blurred at the
      same scale). The real result must be larger by a quarter of an octave (19 %): no ideal is
      derived for this one; it says that the network's own strokes grew (measured 0.46 octave
      at S = 2, 0.61 at S = 3 on this photo; `python tests/stroke_growth.py starry_night`).
    """
    measured = growth(starry, photo)
    for scale in SCALES:
        assert measured["over_filter"][scale] >= 0.5 * math.log2(scale), (scale, measured)
        assert measured["over_resampled"][scale] >= 0.25, (scale, measured)
    assert measured["centres"] == sorted(measured["centres"]), measured  # and S = 1 < 2 < 3


def _edge_contrast(out: np.ndarray, photo: np.ndarray, share: float = 0.02) -> float:
    """Mean |gradient of the output's luminance across the photo's edges| over the photo's
    strongest `share` of gradients (the component along the photo's gradient direction)."""
    py, px = np.gradient(luminance(photo))
    oy, ox = np.gradient(luminance(out))
    magnitude = np.hypot(px, py)
    strong = magnitude >= np.quantile(magnitude, 1.0 - share)
    return float(np.mean(np.abs(ox[strong] * px[strong] + oy[strong] * py[strong]) / magnitude[strong]))


@pytest.mark.parametrize("path, scale", [(CASTLE, 2), (CASTLE, 4), (NUTHATCH, 4)])
def test_edges_stay_sharper_than_bilinear_upsampling(starry, path, scale):
    """Bilinear magnification spreads a one-pixel transition of the working image over S pixels,
    dividing its gradient by about S; guided by the full-size photo, the transition keeps the
    photo's own edge width, so the ideal gain at its strongest edges is about S. Required: at
    least sqrt(S), half-way between no gain (1) and S in octaves (measured 2.2 and 4.5 on the
    castle at S = 2 and 4; 2.4 on the nuthatch, whose edges are soft in the photo itself)."""
    photo = load_image(path).rgb
    size = working_size(photo.shape[2], photo.shape[1], scale, MIN_SIDE)
    small = np.clip(resize_array(photo, size), 0, 1)
    styled = starry(small)
    guided = guided_upsample(small, styled, photo)
    bilinear = np.stack([upsample_bilinear(c, (photo.shape[2], photo.shape[1])) for c in styled])
    assert _edge_contrast(guided, photo) >= math.sqrt(scale) * _edge_contrast(bilinear, photo)


def test_order_with_tile_strength_and_preserve_color(starry, photo):
    # strength and the original's colours apply at full size, against the full-size photo
    assert np.array_equal(stylize_array(starry, photo, strength=0.0, stroke_scale=2), photo)
    kept = stylize_array(starry, photo, preserve_colors=True, stroke_scale=2)
    inside = np.all((kept > 0.01) & (kept < 0.99), axis=0)  # not clipped
    chroma = lambda x: np.tensordot(_YIQ, x, axes=1)[1:]  # noqa: E731
    assert np.abs(chroma(kept) - chroma(photo))[:, inside].max() < 1e-4
    # tiles are cut from the working-size image (128 px there), in the tone of the untiled result
    tiled = stylize_array(starry, photo, tile=128, stroke_scale=2)
    small = np.clip(resize_array(photo, working_size(640, 400, 2, MIN_SIDE)), 0, 1)
    assert np.array_equal(tiled, guided_upsample(small, stylize_tiled(starry, small, 128), photo))
    blocks = lambda x: x.reshape(3, 400 // 80, 80, 640 // 80, 80).mean(axis=(2, 4))  # noqa: E731
    assert np.abs(blocks(tiled) - blocks(stylize_array(starry, photo, stroke_scale=2))).mean() < 0.03


@pytest.mark.parametrize("value", ["0.5", "0", "-2", "nan", "inf", "17", "big"])
def test_cli_refuses_bad_scales_in_one_line(value, tmp_path):
    code, stdout, stderr = run_fst("stylize", CASTLE, "-o", tmp_path / "x.png", "--stroke-scale", value)
    assert code == 2 and stderr.count("\n") == 1 and stderr.startswith("fst: error: ") and "stroke-scale" in stderr
    assert not (tmp_path / "x.png").exists() and "Traceback" not in stderr
    with pytest.raises(FstError, match="stroke scale"):
        stylize_array(None, np.zeros((3, 32, 32), np.float32), stroke_scale=float(value) if value != "big" else 0.0)


CATALOG = {"starry_night": []}  # the server's models and their styles (a single-style network: none)


def test_server_takes_stroke_scale(starry):
    assert parse_params({"stroke_scale": "2"}, "starry_night", CATALOG).stroke_scale == 2.0
    assert parse_params({}, "starry_night", CATALOG).stroke_scale == 1.0
    for bad in ("0.9", "nan", "x", "100"):
        with pytest.raises(ApiError) as refused:
            parse_params({"stroke_scale": bad}, "starry_night", CATALOG)
        assert refused.value.status == 422 and "stroke_scale" in str(refused.value)
    model = SimpleNamespace(stylizer=starry, name="starry_night")
    params = parse_params({"stroke_scale": "2.5", "max_size": "300"}, "starry_night", CATALOG)
    data, size, _ = run_job(model, NUTHATCH.read_bytes(), params, 10**7, 2048)
    assert size == (300, 188) and Image.open(io.BytesIO(data)).size == size  # max_size first, then the scale
