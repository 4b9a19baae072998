"""Training photos: any folder of images (searched recursively), or a COCO subset via `datasets`.

Augmentation is a pure function of (seed, epoch, index): a sample is the same whichever worker or
process loads it, which is what makes `--resume` and distributed runs exact.
"""

from __future__ import annotations

import hashlib
import os

import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torch.utils.data import Dataset

from fst import FstError
from fst.images import find_images, load_image

COCO_DATASET_ID = "detection-datasets/coco"  # parquet COCO 2017 with an `image` column
COCO_SPLIT = "train"


def _readable(path: str) -> bool:
    """Cheap check of the header only; a file that still fails to decode later is replaced."""
    try:
        with Image.open(path) as img:
            img.verify()
        return True
    except Exception:
        return False


def split_validation(paths: list[str], count: int) -> tuple[list[str], list[str]]:
    """Hold out `count` photos, chosen by a hash of their name (stable as the folder grows)."""
    ranked = sorted(paths, key=lambda p: hashlib.sha1(os.path.basename(p).encode()).hexdigest())
    held = set(ranked[:count])
    return [p for p in paths if p not in held], sorted(held)


class PhotoFolder(Dataset):
    """Photos under `root`, resized (shorter side) and randomly cropped to `image_size`.

    Items are (3, S, S) float tensors in [0, 1]. `epoch` must be set before each epoch.
    """

    def __init__(self, paths: list[str], image_size: int, flip: bool = True, seed: int = 0):
        self.paths = paths
        self.image_size = image_size
        self.flip = flip
        self.seed = seed
        self.epoch = 0

    @classmethod
    def from_folder(cls, root: str, image_size: int, flip: bool = True, seed: int = 0, log=print):
        if not os.path.isdir(root):
            raise FstError(f"{root}: no such folder of training images")
        candidates = find_images([root])
        paths = [p for p in candidates if _readable(p)]
        skipped = len(candidates) - len(paths)
        if skipped:
            log(f"skipped {skipped} unreadable file(s) under {root}")
        if not paths:
            raise FstError(f"{root}: no readable images found (searched recursively)")
        return cls(paths, image_size, flip, seed)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(hash((self.seed, self.epoch, index)) & 0x7FFFFFFF)
        for attempt in range(len(self.paths)):
            path = self.paths[(index + attempt) % len(self.paths)]
            try:
                image = torch.from_numpy(load_image(path).rgb)
                break
            except FstError:
                continue  # broken despite a valid header: take the next photo
        else:
            raise FstError("no decodable training image")
        return random_crop(image, self.image_size, self.flip, g)


def random_crop(image: torch.Tensor, size: int, flip: bool, g: torch.Generator) -> torch.Tensor:
    """(3, H, W) -> (3, size, size): shorter side to `size`, a random square crop, maybe a flip."""
    image = TF.resize(image, size, antialias=True)
    h, w = image.shape[-2:]
    top = int(torch.randint(0, h - size + 1, (1,), generator=g))
    left = int(torch.randint(0, w - size + 1, (1,), generator=g))
    image = image[:, top : top + size, left : left + size]
    if flip and torch.rand(1, generator=g).item() < 0.5:
        image = image.flip(-1)
    return image.clamp(0, 1).contiguous()


def cache_dataset_images(records, out_dir: str, limit: int, image_column: str = "image", log=print) -> str:
    """Save the first `limit` images of a (streamed) `datasets` dataset as JPEGs in `out_dir`.

    Already-fetched files are kept, so a second run with the same or a smaller --limit fetches
    nothing. Returns out_dir, ready for PhotoFolder.
    """
    from tqdm import tqdm

    os.makedirs(out_dir, exist_ok=True)
    have = len([f for f in os.listdir(out_dir) if f.endswith(".jpg")])
    if have >= limit:
        log(f"using {limit} cached images in {out_dir}")
        return out_dir
    saved = 0
    for i, record in enumerate(tqdm(records, total=limit, desc="fetching images", unit="img")):
        if i >= limit:
            break
        target = os.path.join(out_dir, f"{i:07d}.jpg")
        if os.path.exists(target):
            continue
        image = record[image_column]
        if not isinstance(image, Image.Image):
            raise FstError(f"dataset column {image_column!r} does not hold images")
        tmp = target + ".part"
        image.convert("RGB").save(tmp, "JPEG", quality=95)
        os.replace(tmp, target)
        saved += 1
    log(f"fetched {saved} new images into {out_dir}")
    return out_dir


def coco_subset(limit: int, cache_root: str | None = None, dataset_id: str = COCO_DATASET_ID, split: str = COCO_SPLIT) -> str:
    """Stream the first `limit` COCO training images through `datasets` and cache them as files."""
    import datasets

    cache_root = cache_root or os.path.join(os.path.expanduser("~"), ".cache", "fst", "datasets")
    out_dir = os.path.join(cache_root, dataset_id.replace("/", "__"), split)
    if os.path.isdir(out_dir) and len([f for f in os.listdir(out_dir) if f.endswith(".jpg")]) >= limit:
        return out_dir
    try:
        stream = datasets.load_dataset(dataset_id, split=split, streaming=True)
    except Exception as e:
        raise FstError(f"cannot open dataset {dataset_id!r} ({type(e).__name__}: {str(e).splitlines()[0][:120]}); "
                       "use --data DIR with a folder of photos offline") from None
    return cache_dataset_images(stream, out_dir, limit)
