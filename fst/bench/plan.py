"""What one `fst bench` run measures (sizes, warm-up and repeats) and what its sections share."""

from __future__ import annotations

from dataclasses import dataclass, field

from fst.bench.harness import Timer
from fst.bench.inputs import Inputs, Model

SECTION_NAMES = ("peak", "stylize", "command", "train", "optimize", "video", "quality")


@dataclass
class Plan:
    quick: bool
    stylize_sizes: list[int]
    train_sizes: list[int]
    optimize_sizes: list[int]
    command_size: int = 1024
    batch: int = 4
    train_style_size: int = 512
    peak_n: int = 2048
    calibration_size: int = 256
    warmup: dict[str, int] = field(default_factory=dict)
    repeats: dict[str, int] = field(default_factory=dict)
    # quality (time to quality): training time per side, seconds of it per round (one evaluation
    # each), crop size (None: the model's recorded one) and the held-out photos' size (None: their own)
    quality_seconds: float = 900.0
    quality_every: float = 60.0
    quality_crop: int | None = None
    quality_eval_size: int | None = None

    @classmethod
    def make(cls, quick: bool, repeats: int | None, quality_minutes: float | None = None) -> "Plan":
        if quick:  # CI: every row and check at toy sizes, ~1 minute on 2 busy cores
            plan = cls(True, [64, 128], [64], [64], command_size=128, train_style_size=128, peak_n=1024,
                       calibration_size=64, warmup={**dict.fromkeys(SECTION_NAMES, 1), "command": 0, "video": 0},
                       repeats={"peak": 3, "stylize": 3, "command": 2, "train": 2, "optimize": 2, "video": 1},
                       quality_seconds=4.0, quality_every=2.0, quality_crop=64, quality_eval_size=64)
        else:
            plan = cls(False, [256, 512, 1024], [128, 256], [256, 512],
                       warmup={"peak": 1, "stylize": 2, "command": 1, "train": 1, "optimize": 1, "video": 0},
                       repeats={"peak": 5, "stylize": 5, "command": 5, "train": 3, "optimize": 3, "video": 2})
        if repeats is not None:
            plan.repeats = dict.fromkeys(plan.repeats, repeats)
        if quality_minutes is not None:
            plan.quality_seconds = quality_minutes * 60
        return plan


@dataclass
class Context:
    """Everything a section needs; the loss network is loaded on first use."""

    plan: Plan
    device: object  # torch.device
    timer: Timer
    model: Model
    inputs: Inputs
    workdir: str
    vgg_weights: str | None
    video: str | None = None  # the video section's clip (None: fst.video.bench.DEFAULT_CLIP)
    quality_model: str | None = None  # the quality section's model (None: its QUALITY_MODEL)
    photos: str | None = None  # the quality section's photos (None: see sections/quality.photo_folder)
    quality_init: str | None = None  # the quality section's fst side starts from this model (None: from scratch)
    quality_style_weight: float | None = None  # the quality section's style weight, both sides (None: the model's)
    quality_add_style: bool = False  # the fst side adds the painting to the --init collection (its own parameters alone)
    quality_lr: float | None = None  # the fst side's learning rate (None: the model's)
    peak: dict = field(default_factory=dict)  # {"float32": GFLOP/s, "bfloat16": ...} from the peak section
    _loss_net: object = None

    @property
    def loss_net(self):
        if self._loss_net is None:
            from fst.vgg import load_loss_network

            self._loss_net = load_loss_network(self.vgg_weights, self.device)
        return self._loss_net

    @property
    def bf16(self) -> bool:
        """Time bf16 rows: a CUDA device, or a CPU where bf16 measured faster than fp32 (the probe
        --amp auto uses: a CPU without bf16 units, or oneDNN capped at AVX2, only emulates it)."""
        from fst.runtime import BF16_MIN_SPEEDUP, cpu_bf16_speedup

        return self.device.type == "cuda" or cpu_bf16_speedup() >= BF16_MIN_SPEEDUP
