"""fst.images: loading awkward files, saving safely, finding inputs, colour preservation."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from PIL import Image

from conftest import BOMB_SIZE, RGBA_ALPHAS, RGBA_COLOUR
from fst import FstError
from fst import images
from fst.images import find_images, load_image, preserve_color, save_image

YIQ = np.array(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]], np.float64
)


def yiq(rgb: np.ndarray) -> np.ndarray:
    return np.tensordot(YIQ, rgb.astype(np.float64), axes=1)


def check_rgb(loaded, width, height):
    assert loaded.rgb.dtype == np.float32
    assert loaded.rgb.shape == (3, height, width)
    assert loaded.size == (width, height)
    assert loaded.rgb.min() >= 0.0 and loaded.rgb.max() <= 1.0


# ------------------------------------------------------------------ load_image: good files


def test_real_photo_loads_and_resizes(photo_paths):
    img = load_image(photo_paths[0])
    check_rgb(img, 320, 172)
    assert img.alpha is None
    assert img.rgb.std() > 0.1  # a real picture, not a flat fill
    small = load_image(photo_paths[0], long_side=64)
    check_rgb(small, 64, 34)
    exact = load_image(photo_paths[0], size=(50, 20))
    check_rgb(exact, 50, 20)
    # downscaling keeps the picture: mean colour within a few levels
    np.testing.assert_allclose(small.rgb.mean(axis=(1, 2)), img.rgb.mean(axis=(1, 2)), atol=0.02)


def test_one_pixel_png_loads_exactly(bad_images):
    img = load_image(bad_images["tiny"])
    check_rgb(img, 1, 1)
    np.testing.assert_allclose(img.rgb[:, 0, 0], np.array([10, 20, 30]) / 255, atol=1e-6)


def test_cmyk_jpeg_comes_out_as_rgb_red(bad_images):
    img = load_image(bad_images["cmyk"])
    check_rgb(img, 40, 30)
    assert img.alpha is None
    r, g, b = img.rgb.mean(axis=(1, 2))
    assert r > 0.85 and g < 0.15 and b < 0.15, (r, g, b)


def test_cmyk_jpeg_resized(bad_images):
    img = load_image(bad_images["cmyk"], long_side=20)
    check_rgb(img, 20, 15)
    r, g, b = img.rgb.mean(axis=(1, 2))
    assert r > 0.85 and g < 0.15 and b < 0.15, (r, g, b)


def test_16bit_grey_png_uses_the_full_range(bad_images):
    img = load_image(bad_images["grey16"])
    check_rgb(img, 600, 24)
    np.testing.assert_array_equal(img.rgb[0], img.rgb[1])
    np.testing.assert_array_equal(img.rgb[0], img.rgb[2])
    row = img.rgb[0, 0]
    assert row[0] == 0.0
    assert row[-1] == pytest.approx(1.0, abs=1e-6)  # 65535 -> 1, not clipped at 255/65535 scale
    assert row[300] == pytest.approx(300 / 599, abs=1e-4)  # linear, mid-grey in the middle
    # not quantised to 8 bits: all 600 levels survive
    assert len(np.unique(row)) == 600
    assert np.all(np.diff(row) > 0)


def test_16bit_grey_png_resized_is_not_clipped(bad_images):
    img = load_image(bad_images["grey16"], long_side=100)
    check_rgb(img, 100, 4)
    assert img.rgb.max() > 0.97
    assert img.rgb[0, 0, 50] == pytest.approx(0.5, abs=0.03)
    assert len(np.unique(img.rgb[0, 0])) > 50


def test_rgba_png_keeps_alpha_aside(bad_images):
    img = load_image(bad_images["rgba"])
    check_rgb(img, 32, 24)
    assert img.alpha is not None and img.alpha.shape == (24, 32) and img.alpha.dtype == np.float32
    np.testing.assert_allclose(img.alpha[:, :16], RGBA_ALPHAS[0] / 255, atol=1e-6)
    np.testing.assert_allclose(img.alpha[:, 16:], RGBA_ALPHAS[1] / 255, atol=1e-6)
    # colour is the stored colour, not premultiplied or composited on black/white
    for c, value in enumerate(RGBA_COLOUR):
        np.testing.assert_allclose(img.rgb[c], value / 255, atol=1e-6)


def test_rgba_png_resized_keeps_alpha(bad_images):
    img = load_image(bad_images["rgba"], long_side=16)
    check_rgb(img, 16, 12)
    assert img.alpha.shape == (12, 16)
    assert img.alpha[:, :6].min() > 0.95
    assert abs(img.alpha[:, -6:].mean() - RGBA_ALPHAS[1] / 255) < 0.03


def test_greyscale_jpeg_becomes_three_equal_channels(bad_images):
    img = load_image(bad_images["grey8"])
    check_rgb(img, 48, 32)
    assert img.alpha is None
    np.testing.assert_array_equal(img.rgb[0], img.rgb[1])
    np.testing.assert_array_equal(img.rgb[1], img.rgb[2])
    assert img.rgb[0, :, :3].mean() < 0.1 and img.rgb[0, :, -3:].mean() > 0.9


def test_exif_orientation_6_is_applied(bad_images):
    stored = np.asarray(Image.open(bad_images["exif_rotated"]).convert("RGB"), np.float32) / 255
    assert stored.shape == (40, 60, 3)  # as written: 60 wide, 40 high, red band on top
    img = load_image(bad_images["exif_rotated"])
    check_rgb(img, 40, 60)  # displayed: width and height swapped
    red, blue = np.array([1, 0, 0]), np.array([0, 0, 1])
    right = img.rgb[:, :, -6:].mean(axis=(1, 2))
    left = img.rgb[:, :, :25].mean(axis=(1, 2))
    np.testing.assert_allclose(right, red, atol=0.1)  # rotated clockwise: the top band is on the right
    np.testing.assert_allclose(left, blue, atol=0.1)
    # exactly a clockwise quarter turn of the stored pixels
    np.testing.assert_allclose(img.rgb.transpose(1, 2, 0), np.rot90(stored, k=-1), atol=1e-6)
    small = load_image(bad_images["exif_rotated"], long_side=30)
    check_rgb(small, 20, 30)


# ------------------------------------------------------------------ load_image: refused files


def test_text_file_named_jpg_is_refused(bad_images):
    with pytest.raises(FstError, match="not an image") as e:
        load_image(bad_images["text"])
    assert str(bad_images["text"]) in str(e.value)


def test_truncated_jpeg_is_refused(bad_images):
    with pytest.raises(FstError, match="truncated") as e:
        load_image(bad_images["truncated"])
    assert str(bad_images["truncated"]) in str(e.value)


def test_missing_file_and_folder_are_refused(tmp_path):
    with pytest.raises(FstError, match="no such file") as e:
        load_image(tmp_path / "nothing.png")
    assert "nothing.png" in str(e.value)
    with pytest.raises(FstError, match="folder"):
        load_image(tmp_path)


def test_pixel_bomb_is_refused_from_the_header_quickly(bad_images):
    raw = bad_images["bomb"].read_bytes()
    assert len(raw) < 200  # the file really is tiny; only its header claims 10 gigapixels
    with Image.open(bad_images["bomb"]) as im:
        assert im.size == (BOMB_SIZE, BOMB_SIZE)  # the patched header (and CRC) is accepted
    start = time.perf_counter()
    with pytest.raises(FstError) as e:
        load_image(bad_images["bomb"])
    assert time.perf_counter() - start < 1.0
    message = str(e.value)
    assert str(bad_images["bomb"]) in message
    assert "100000x100000" in message and "--max-pixels" in message


def test_max_pixels_limit_applies_and_can_be_raised(photo_paths):
    pixels = 320 * 172
    with pytest.raises(FstError, match="over the limit") as e:
        load_image(photo_paths[0], max_pixels=pixels - 1)
    assert photo_paths[0] in str(e.value)
    img = load_image(photo_paths[0], max_pixels=pixels)
    check_rgb(img, 320, 172)


# ------------------------------------------------------------------ save_image


def _gradient_image(h=24, w=32, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = np.stack([x / (w - 1), y / (h - 1), 0.5 + 0.3 * np.sin(x / 3)]).astype(np.float32)
    return np.clip(rgb + rng.normal(0, 0.02, rgb.shape).astype(np.float32), 0, 1)


@pytest.mark.parametrize(
    "ext, magic, max_error, mean_error",
    [(".png", b"\x89PNG\r\n\x1a\n", 0.5 / 255 + 1e-6, 0.5 / 255), (".jpg", b"\xff\xd8\xff", 0.2, 0.03),
     (".jpeg", b"\xff\xd8\xff", 0.2, 0.03), (".webp", b"RIFF", 0.2, 0.03)],
)
def test_save_image_writes_format_by_extension(tmp_path, ext, magic, max_error, mean_error):
    rgb = _gradient_image()
    path = tmp_path / f"out{ext}"
    save_image(path, rgb)
    data = path.read_bytes()
    assert data.startswith(magic)
    if ext == ".webp":
        assert data[8:12] == b"WEBP"
    back = load_image(path)
    check_rgb(back, 32, 24)
    error = np.abs(back.rgb - rgb)
    assert error.max() <= max_error and error.mean() <= mean_error, (error.max(), error.mean())
    assert os.listdir(tmp_path) == [path.name]  # no temporary files left behind


def test_save_image_png_keeps_alpha(tmp_path):
    rgb = _gradient_image()
    alpha = np.linspace(0, 1, 32, dtype=np.float32)[None].repeat(24, 0)
    save_image(tmp_path / "a.png", rgb, alpha)
    back = load_image(tmp_path / "a.png")
    assert back.alpha is not None
    assert np.abs(back.alpha - alpha).max() <= 0.5 / 255 + 1e-6


def test_save_image_refuses_to_overwrite(tmp_path):
    path = tmp_path / "out.png"
    path.write_bytes(b"precious")
    with pytest.raises(FstError, match="already exists") as e:
        save_image(path, _gradient_image())
    assert str(path) in str(e.value) and "--overwrite" in str(e.value)
    assert path.read_bytes() == b"precious"
    save_image(path, _gradient_image(), overwrite=True)
    assert path.read_bytes().startswith(b"\x89PNG")
    assert os.listdir(tmp_path) == ["out.png"]


@pytest.mark.parametrize("name", ["out.gif", "out.bmp", "out"])
def test_save_image_unknown_extension_is_an_error(tmp_path, name):
    with pytest.raises(FstError, match="unknown output extension"):
        save_image(tmp_path / name, _gradient_image())
    assert os.listdir(tmp_path) == []


def test_save_image_failed_write_leaves_no_temp_file(tmp_path, monkeypatch):
    def failing_replace(src, dst):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(images.os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated"):
        save_image(tmp_path / "out.png", _gradient_image())
    assert os.listdir(tmp_path) == []


def test_save_image_metadata_in_png(tmp_path):
    save_image(tmp_path / "m.png", _gradient_image(), metadata={"fst": '{"a": 1}'})
    with Image.open(tmp_path / "m.png") as im:
        assert im.text["fst"] == '{"a": 1}'


# ------------------------------------------------------------------ find_images


@pytest.fixture
def image_tree(tmp_path):
    root = tmp_path / "pics"
    (root / "sub" / "deeper").mkdir(parents=True)
    files = ["a.jpg", "B.PNG", "sub/c.webp", "sub/deeper/d.jpeg", "sub/.hidden.png", "notes.txt", "sub/readme.md"]
    for f in files:
        (root / f).write_bytes(b"x")
    return root


def test_find_images_expands_folders_recursively(image_tree):
    found = [os.path.relpath(p, image_tree) for p in find_images([str(image_tree)])]
    assert found == ["B.PNG", "a.jpg", os.path.join("sub", "c.webp"), os.path.join("sub", "deeper", "d.jpeg")]
    flat = [os.path.relpath(p, image_tree) for p in find_images([str(image_tree)], recursive=False)]
    assert flat == ["B.PNG", "a.jpg"]


def test_find_images_globs_and_explicit_files(image_tree):
    found = find_images([str(image_tree / "**" / "*.jp*g")])
    assert sorted(os.path.basename(p) for p in found) == ["a.jpg", "d.jpeg"]
    # a file named explicitly is kept whatever its extension (rejected later by load_image)
    assert find_images([str(image_tree / "notes.txt")]) == [str(image_tree / "notes.txt")]
    both = find_images([str(image_tree / "a.jpg"), str(image_tree / "sub")])
    assert [os.path.basename(p) for p in both] == ["a.jpg", "c.webp", "d.jpeg"]


def test_find_images_errors_on_missing_paths(image_tree):
    missing = str(image_tree / "nope.jpg")
    with pytest.raises(FstError, match="no such file or folder") as e:
        find_images([str(image_tree / "a.jpg"), missing])
    assert missing in str(e.value)
    with pytest.raises(FstError, match="pattern matches no file"):
        find_images([str(image_tree / "*.tiff")])


# ------------------------------------------------------------------ preserve_color


def test_preserve_color_keeps_original_chroma_and_stylized_luminance():
    rng = np.random.default_rng(1)
    original = (0.3 + 0.4 * rng.random((3, 20, 28))).astype(np.float32)
    stylized = (0.3 + 0.4 * rng.random((3, 20, 28))).astype(np.float32)
    out = preserve_color(original, stylized)
    assert out.shape == (3, 20, 28) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    inside = np.all((out > 1e-4) & (out < 1 - 1e-4), axis=0)  # pixels untouched by clipping
    assert inside.mean() > 0.9
    yo, ys, yout = yiq(original), yiq(stylized), yiq(out)
    np.testing.assert_allclose(yout[1:, inside], yo[1:, inside], atol=1e-3)
    np.testing.assert_allclose(yout[0, inside], ys[0, inside], atol=1e-3)
    # and it really changed something: the chroma is not the stylized one
    assert np.abs(yout[1:] - ys[1:]).mean() > 0.02


def test_preserve_color_resizes_the_original():
    y, x = np.mgrid[0:40, 0:60].astype(np.float32)
    original = np.stack([0.3 + 0.4 * x / 59, np.full_like(x, 0.5), 0.6 - 0.2 * y / 39]).astype(np.float32)
    stylized = np.full((3, 20, 30), 0.5, np.float32)
    out = preserve_color(original, stylized)
    assert out.shape == (3, 20, 30)
    small = images.resize_array(original, (30, 20))
    np.testing.assert_allclose(yiq(out)[1:], yiq(small)[1:], atol=2e-3)
    np.testing.assert_allclose(yiq(out)[0], 0.5, atol=2e-3)


def test_preserve_color_of_grey_stylized_is_identity_on_grey_original():
    grey = np.repeat(np.linspace(0.1, 0.9, 16, dtype=np.float32)[None, None], 3, 0).repeat(8, 1)
    out = preserve_color(grey, grey)
    np.testing.assert_allclose(out, grey, atol=1e-5)
