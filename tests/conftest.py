"""Shared fixtures: the real VGG16 weights, small real photos, a corpus of awkward image files,
and a helper that runs the `fst` command line in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# One thread per torch process: the tests share small machines with training runs, where two
# OpenMP threads fighting a busy core make every VGG pass ~20x slower. Set it to override.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# The real, pretrained loss network, in either convention (tests never download anything):
# $FST_VGG_WEIGHTS (a path, or "torchvision" for torchvision's cached IMAGENET1K_V1), else the
# build machines' ../shared file. Checks of the Caffe file itself are marked `caffe` and skipped
# with torchvision's weights.
SHARED_WEIGHTS = REPO.parent / "shared" / "weights" / "vgg16-caffe-features.pth"
os.environ.setdefault("FST_VGG_WEIGHTS", str(SHARED_WEIGHTS) if SHARED_WEIGHTS.is_file() else "torchvision")
VGG_WEIGHTS = os.environ["FST_VGG_WEIGHTS"]
TORCHVISION_FILE = "vgg16-397923af.pth"  # VGG16_Weights.IMAGENET1K_V1, in torch.hub's cache

PHOTOS = ["chenonceau_castle.jpg", "kitten.jpg", "butterfly.jpg"]
STYLE = "starry_night.jpg"


def vgg_convention() -> str:
    """'caffe' or 'torchvision': which weights the tests run with (as fst.vgg decides it)."""
    if VGG_WEIGHTS == "torchvision":
        return "torchvision"
    import torch

    keys = torch.load(VGG_WEIGHTS, map_location="cpu", weights_only=True).keys()
    return "torchvision" if any(k.startswith("features.") for k in keys) else "caffe"


HOW_TO_GET_WEIGHTS = (
    "make the Caffe file with `fst convert-vgg VGG_ILSVRC_16_layers.caffemodel -o vgg16-caffe-features.pth` "
    "and set FST_VGG_WEIGHTS to it, or let torchvision download its weights once (online) and set "
    "FST_VGG_WEIGHTS=torchvision (README: Install)"
)


def pytest_sessionstart(session):
    if VGG_WEIGHTS == "torchvision":
        import torch

        cached = Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILE
        if not cached.is_file():
            raise pytest.UsageError(f"torchvision's VGG16 weights are not cached ({cached}): {HOW_TO_GET_WEIGHTS}")
    elif not os.path.isfile(VGG_WEIGHTS):
        raise pytest.UsageError(f"the VGG16 weights the tests need are missing: {VGG_WEIGHTS}: {HOW_TO_GET_WEIGHTS}")


def pytest_collection_modifyitems(config, items):
    if vgg_convention() == "caffe":
        return
    skip = pytest.mark.skip(reason="a check of the Caffe-convention VGG16 file; running with torchvision's weights")
    for item in items:
        if "caffe" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def photo_paths() -> list[str]:
    paths = [str(FIXTURES / name) for name in PHOTOS]
    for p in paths:
        assert os.path.isfile(p), p
    return paths


@pytest.fixture(scope="session")
def style_path() -> str:
    path = str(FIXTURES / STYLE)
    assert os.path.isfile(path), path
    return path


@pytest.fixture(scope="session")
def loss_network():
    import torch

    from fst.vgg import load_loss_network

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    return load_loss_network()


def run_fst(*args: str, timeout: float = 120, cwd: str | os.PathLike | None = None) -> tuple[int, str, str]:
    """Run `python -m fst ARGS...`; returns (returncode, stdout, stderr)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-m", "fst", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(cwd or REPO),
        env=env,
    )
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="session")
def fst_cli():
    """The CLI runner: fst_cli("optimize", ...) -> (returncode, stdout, stderr)."""
    return run_fst


# ---------------------------------------------------------------- awkward image corpus

CMYK_RED = (0, 255, 255, 0)  # pure red, (255, 0, 0) in RGB
RGBA_COLOUR = (200, 100, 50)
RGBA_ALPHAS = (255, 64)  # left half opaque, right half mostly transparent
BOMB_SIZE = 100_000


def _png_with_patched_size(small_png: bytes, width: int, height: int) -> bytes:
    """Rewrite the IHDR width/height of a PNG (and its CRC) without touching the pixel data."""
    assert small_png[:8] == b"\x89PNG\r\n\x1a\n" and small_png[12:16] == b"IHDR"
    data = bytearray(small_png)
    data[16:20] = width.to_bytes(4, "big")
    data[20:24] = height.to_bytes(4, "big")
    crc = zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF  # chunk type + 13 data bytes
    data[29:33] = crc.to_bytes(4, "big")
    return bytes(data)


def make_bad_images(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}

    out["text"] = folder / "bad.jpg"
    out["text"].write_text("this is not a picture, only text with a .jpg name\n")

    real = (FIXTURES / PHOTOS[0]).read_bytes()
    out["truncated"] = folder / "truncated.jpg"
    out["truncated"].write_bytes(real[: len(real) // 2])

    out["tiny"] = folder / "one_pixel.png"
    Image.new("RGB", (1, 1), (10, 20, 30)).save(out["tiny"])

    out["cmyk"] = folder / "cmyk_red.jpg"
    cmyk = Image.new("RGB", (40, 30), (255, 0, 0)).convert("CMYK")  # pure red
    assert cmyk.getpixel((0, 0)) == CMYK_RED
    cmyk.save(out["cmyk"], quality=95)

    out["grey16"] = folder / "grey16_gradient.png"
    gradient = np.tile(np.linspace(0, 65535, 600).round().astype(np.uint16), (24, 1))
    img16 = Image.fromarray(gradient)
    assert img16.mode == "I;16"
    img16.save(out["grey16"])

    out["rgba"] = folder / "rgba_half_transparent.png"
    rgba = np.zeros((24, 32, 4), np.uint8)
    rgba[..., :3] = RGBA_COLOUR
    rgba[:, :16, 3] = RGBA_ALPHAS[0]
    rgba[:, 16:, 3] = RGBA_ALPHAS[1]
    Image.fromarray(rgba, "RGBA").save(out["rgba"])

    out["grey8"] = folder / "grey8.jpg"
    grey = np.tile(np.linspace(0, 255, 48).round().astype(np.uint8), (32, 1))
    Image.fromarray(grey, "L").save(out["grey8"], quality=95)

    # Stored 60 wide x 40 high, red band along the top; EXIF Orientation=6 means "rotate 90
    # degrees clockwise to display": the shown picture is 40 wide x 60 high, red band on the right.
    out["exif_rotated"] = folder / "exif_orientation6.jpg"
    stored = np.zeros((40, 60, 3), np.uint8)
    stored[...] = (0, 0, 255)
    stored[:10] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored, "RGB").save(out["exif_rotated"], quality=95, exif=exif.tobytes())

    out["bomb"] = folder / "bomb_100000x100000.png"
    buf = folder / "_small.png"
    Image.new("L", (8, 8), 128).save(buf)
    out["bomb"].write_bytes(_png_with_patched_size(buf.read_bytes(), BOMB_SIZE, BOMB_SIZE))
    buf.unlink()
    return out


@pytest.fixture(scope="session")
def bad_images(tmp_path_factory) -> dict[str, Path]:
    return make_bad_images(tmp_path_factory.mktemp("bad_images"))
