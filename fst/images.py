"""Reading, writing and colour handling of images; every command goes through here.

Only numpy and Pillow: `fst stylize` on an ONNX model must not pay for importing torch.

Conventions: an RGB image is a float32 numpy array of shape (3, H, W) with values in [0, 1];
an alpha channel, when present, is float32 (H, W) in [0, 1] and is kept aside.
"""

from __future__ import annotations

import glob
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fst import FstError

# Pillow's own decompression-bomb guard fires at ~89 MP; we use our own, explicit limit
# (raised with --max-pixels) and check it from the header, before anything is decoded.
DEFAULT_MAX_PIXELS = 100_000_000
Image.MAX_IMAGE_PIXELS = None

LOSS_MIN_SIDE = 16  # three VGG poolings deep, and something to look at
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm"}
# The only formats decoded (fst serve and every command alike): what cameras, phones and editors
# write. Pillow knows ~40 more (EPS runs Ghostscript, DDS, PSD, FITS, WMF...): each is attack
# surface nobody sends on purpose. (Phones' multi-picture JPEGs open as JPEG, then become MPO.)
# PPM is the uncompressed exchange format of tools (netpbm, ffmpeg).
DECODED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "PPM")
SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


class NotAnImageError(FstError):
    """The data is not in any of the formats fst decodes (DECODED_FORMATS)."""


class BrokenImageError(FstError):
    """A readable header, but the image cannot be decoded (truncated, corrupt, zero size)."""


class TooManyPixelsError(FstError):
    """The header announces more pixels than the caller's limit; nothing was decoded."""


@dataclass
class LoadedImage:
    rgb: np.ndarray  # float32 (3, H, W) in [0, 1]
    alpha: np.ndarray | None  # float32 (H, W) in [0, 1], or None
    path: str = ""

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as Pillow counts."""
        return self.rgb.shape[2], self.rgb.shape[1]


def open_image(path: str | os.PathLike | BinaryIO) -> Image.Image:
    """Open (header only) an image in one of DECODED_FORMATS; NotAnImageError for anything else.

    `path` may also be a binary file-like object (e.g. io.BytesIO of an upload).
    """
    try:
        return Image.open(path, formats=DECODED_FORMATS)
    except UnidentifiedImageError:
        name = str(getattr(path, "name", "") or "image") if hasattr(path, "read") else str(path)
        raise NotAnImageError(f"{name}: not an image in a format fst reads ({', '.join(DECODED_FORMATS)})") from None


def _open_checked(path: str | os.PathLike | BinaryIO, max_pixels: int, max_side: int | None = None) -> Image.Image:
    """Open and fully decode an image, refusing anything that is not a sane picture.

    `path` may also be a binary file-like object (e.g. io.BytesIO of an upload); its name is
    its `name` attribute, else "image". max_side: a JPEG is decoded at the smallest 1/2, 1/4 or
    1/8 scale that still has max_side pixels on its longer side (libjpeg's DCT scaling: a 6000x4000
    photo for a 2048 answer decodes to 3000x2000, a quarter of the memory).
    """
    if hasattr(path, "read"):
        name = str(getattr(path, "name", "") or "image")
        source = path
    else:
        name = str(path)
        if not os.path.exists(name):
            raise FstError(f"{name}: no such file")
        if os.path.isdir(name):
            raise FstError(f"{name}: is a folder, not an image")
        source = name
    try:
        img = open_image(source)
    except OSError as e:
        raise BrokenImageError(f"{name}: cannot open image ({e})") from None
    w, h = img.size
    if w <= 0 or h <= 0:
        raise BrokenImageError(f"{name}: image has zero size ({w}x{h})")
    if w * h > max_pixels:
        raise TooManyPixelsError(
            f"{name}: {w}x{h} is {w * h:,} pixels, over the limit of {max_pixels:,} "
            f"(raise it with --max-pixels if the file is trusted)"
        )
    if max_side is not None and img.format in ("JPEG", "MPO") and max(w, h) > max_side:
        scale = max_side / max(w, h)
        img.draft(img.mode, (math.ceil(w * scale), math.ceil(h * scale)))
    try:
        img.load()
    except (OSError, SyntaxError, ValueError, NotImplementedError, EOFError) as e:
        raise BrokenImageError(f"{name}: broken or truncated image ({str(e)[:200]})") from None
    return img


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (img.mode == "P" and "transparency" in img.info)


def _to_resizable(img: Image.Image) -> Image.Image:
    """A mode Pillow resizes without losing anything: 8-bit L/LA/RGB/RGBA, 32-bit I/F (16-bit grey)."""
    if img.mode in ("RGB", "RGBA", "L", "LA", "I", "F"):
        return img
    if img.mode.startswith("I;16"):
        return img.convert("I")
    return img.convert("RGBA" if _has_alpha(img) else "RGB")  # 1, P, CMYK, YCbCr...: exact in 8 bits


def _to_float_channels(img: Image.Image, bits16: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Pillow image of any mode -> (rgb (3,H,W), alpha (H,W) or None), float32 in [0, 1].

    bits16: the pixels came from a 16-bit file (now maybe mode I after a resize): scale by 65535.
    """
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit (or 32-bit) greyscale: Pillow's convert("RGB") would clip at 255.
        grey = np.asarray(img, dtype=np.float32)
        scale = 65535.0 if (bits16 or mode.startswith("I;16") or grey.max() > 255) else 255.0
        if mode == "F":
            scale = max(1.0, float(grey.max()))
        grey = np.clip(grey / scale, 0.0, 1.0)
        return np.repeat(grey[None], 3, axis=0), None
    if _has_alpha(img):
        arr = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
        return np.ascontiguousarray(arr[..., :3].transpose(2, 0, 1)), arr[..., 3].copy()
    # CMYK, YCbCr, L, 1, P and RGB: Pillow's conversion to RGB is correct for these.
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return np.ascontiguousarray(arr.transpose(2, 0, 1)), None


def _target_size(w: int, h: int, long_side: int | None, size: tuple[int, int] | None):
    if size is not None:
        return size
    if long_side is not None and max(w, h) != long_side:
        scale = long_side / max(w, h)
        return max(1, round(w * scale)), max(1, round(h * scale))
    return w, h


def load_image(
    path: str | os.PathLike | BinaryIO,
    long_side: int | None = None,
    size: tuple[int, int] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_side: int | None = None,
    margin: float = 0.0,
) -> LoadedImage:
    """Read an image as RGB float (3, H, W) in [0, 1], EXIF orientation applied.

    path: a file path, or a binary file-like object (an upload in memory).
    long_side: resize so the longer side has this many pixels; size: exact (width, height);
    max_side: shrink (never enlarge) so the longer side is at most this. Decoded once.
    margin: cut this fraction of the width (height) off the left and right (top and bottom) first,
    before any resize (style images: see LossConfig.style_margin).
    """
    img = _open_checked(path, max_pixels, max_side)
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # a corrupt EXIF block must not lose the picture
        pass
    if margin:
        dx, dy = round(margin * img.width), round(margin * img.height)
        img = img.crop((dx, dy, img.width - dx, img.height - dy))
    if max_side is not None and max(img.size) > max_side:
        long_side = max_side
    bits16 = img.mode.startswith("I;16")
    target = _target_size(*img.size, long_side, size)
    if target != img.size:  # shrink (or grow) before the float32 copy: 12 bytes a pixel
        img = _to_resizable(img).resize(target, Image.Resampling.LANCZOS)
    rgb, alpha = _to_float_channels(img, bits16)
    name = str(getattr(path, "name", "") or "image") if hasattr(path, "read") else str(path)
    return LoadedImage(rgb, alpha, name)


def check_min_side(rgb: np.ndarray, path: str) -> None:
    """Refuse images under LOSS_MIN_SIDE pixels a side (the loss network pools three times)."""
    # As loaded and as stored in the file: upscaling a tiny image to --image-size does not make it usable.
    with Image.open(path) as stored:  # the header only: load_image has already accepted this file
        sizes = [stored.size, (rgb.shape[2], rgb.shape[1])]
    for w, h in sizes:
        if min(w, h) < LOSS_MIN_SIDE:
            raise FstError(f"{path}: {w}x{h} is too small (at least {LOSS_MIN_SIDE} px a side)")


def resize_array(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a float (C, H, W) array to (width, height) with Lanczos, channel by channel."""
    if (rgb.shape[2], rgb.shape[1]) == tuple(size):
        return rgb
    return np.stack(
        [np.asarray(Image.fromarray(c.astype(np.float32), "F").resize(size, Image.Resampling.LANCZOS)) for c in rgb]
    )


def to_uint8_hwc(rgb: np.ndarray) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> (H, W, 3) uint8, rounded."""
    return (np.clip(rgb, 0.0, 1.0).transpose(1, 2, 0) * 255.0 + 0.5).astype(np.uint8)


def to_pil(rgb: np.ndarray, alpha: np.ndarray | None = None) -> Image.Image:
    img = Image.fromarray(to_uint8_hwc(rgb), "RGB")
    if alpha is not None:
        img.putalpha(Image.fromarray((np.clip(alpha, 0, 1) * 255 + 0.5).astype(np.uint8), "L"))
    return img


def encode_image(
    rgb: np.ndarray, fmt: str, alpha: np.ndarray | None = None, quality: int = 92, metadata: dict | None = None
) -> bytes:
    """Encode to PNG, JPEG or WEBP bytes (JPEG drops alpha). metadata: PNG text chunks / JPEG comment."""
    import io

    from PIL import PngImagePlugin

    fmt = fmt.upper().replace("JPG", "JPEG")
    if fmt not in ("PNG", "JPEG", "WEBP"):
        raise FstError(f"unsupported output format {fmt!r} (use png, jpeg or webp)")
    img = to_pil(rgb, None if fmt == "JPEG" else alpha)
    options: dict = {"quality": quality} if fmt != "PNG" else {}
    if metadata and fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        for key, value in metadata.items():
            info.add_text(key, value)
        options["pnginfo"] = info
    elif metadata and fmt == "JPEG":
        options["comment"] = "\n".join(f"{k}: {v}" for k, v in metadata.items()).encode()
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def check_writable(path: str | os.PathLike, overwrite: bool = False, formats=SAVE_FORMATS, use: str = ".png, .jpg or .webp") -> str:
    """Refuse an output path that would silently destroy a file, or has an extension not in `formats`."""
    path = str(path)
    ext = Path(path).suffix.lower()
    if ext not in formats:
        raise FstError(f"{path}: unknown output extension {ext or '(none)'!r} (use {use})")
    if os.path.exists(path) and not overwrite:
        raise FstError(f"{path}: already exists (pass --overwrite to replace it)")
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write via a temporary file in the same folder, then rename: no half-written outputs."""
    path = str(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".fst-", suffix=Path(path).suffix, dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, default_file_mode())  # mkstemp makes 0600; give the usual umask'd mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def default_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def save_image(
    path: str | os.PathLike,
    rgb: np.ndarray,
    alpha: np.ndarray | None = None,
    overwrite: bool = False,
    quality: int = 92,
    metadata: dict | None = None,
) -> None:
    """Save (3, H, W) [0, 1] as PNG/JPEG/WebP by extension, atomically, never clobbering."""
    path = check_writable(path, overwrite)
    atomic_write_bytes(path, encode_image(rgb, SAVE_FORMATS[Path(path).suffix.lower()], alpha, quality, metadata))


# Luminance-only transfer (Gatys et al. 2016, "Preserving colour in neural artistic style
# transfer"): keep the stylized luminance Y, take the chrominance (I, Q) of the original.
_RGB_TO_YIQ = np.array(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]],
    dtype=np.float32,
)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ).astype(np.float32)


def preserve_color(original: np.ndarray, stylized: np.ndarray) -> np.ndarray:
    """(3, H, W) x2 in [0, 1] -> stylized luminance with the original's colours, (3, H, W)."""
    if original.shape != stylized.shape:
        original = resize_array(original, (stylized.shape[2], stylized.shape[1]))
    yiq_s = np.tensordot(_RGB_TO_YIQ, stylized, axes=1)
    yiq_o = np.tensordot(_RGB_TO_YIQ, original, axes=1)
    mixed = np.concatenate([yiq_s[:1], yiq_o[1:]], axis=0)
    return np.clip(np.tensordot(_YIQ_TO_RGB, mixed, axes=1), 0.0, 1.0).astype(np.float32)


def find_images(inputs: list[str], recursive: bool = True, extensions: set[str] = IMAGE_EXTENSIONS) -> list[str]:
    """Expand files, folders (searched recursively) and glob patterns into image paths.

    Folders yield only files with one of `extensions` (stylize adds videos); a file named
    explicitly is kept whatever its extension (rejected later with a clear message if unreadable).
    """
    found: list[str] = []
    for item in inputs:
        if os.path.isdir(item):
            for root, dirs, files in os.walk(item):
                dirs.sort()
                if not recursive:
                    dirs.clear()
                found += [
                    os.path.join(root, f)
                    for f in sorted(files)
                    if Path(f).suffix.lower() in extensions and not f.startswith(".")
                ]
        elif os.path.exists(item):
            found.append(item)
        elif glob.has_magic(item):
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                raise FstError(f"{item}: pattern matches no file")
            found += find_images(matches, recursive, extensions)
        else:
            raise FstError(f"{item}: no such file or folder")
    return found
