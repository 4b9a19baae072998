"""The settings of training, optimization and the loss, with their defaults: the one source of
defaults (the command line takes its own from here). No torch here: `fst --help` and `fst stylize`
import this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fst import FstError, parse_weighted, shown
from fst.cpuinfo import usable_cores

JOHNSON_CHANNELS = 32  # Johnson et al.'s width of the first layer
DEFAULT_CHANNELS = 16  # fst's: 3.6x fewer multiply-accumulates (README: Performance)
DEFAULT_RES_BLOCKS = 5
# --init auto (fst train's default): a one-style run at this collection's width starts from its
# convolutions and its style nearest the new painting (README: Time to quality, a new painting
# from a collection); a shipped collection's name (fst.styles.COLLECTIONS).
DEFAULT_INIT_COLLECTION = "classics"
DEFAULT_CONTENT_LAYER = "relu2_2"
DEFAULT_STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")


def default_workers(cores: int | None = None) -> int:
    """fst train's DataLoader worker processes: none on a machine of 2 cores or fewer, where they
    take the cores from torch's threads (a step 8-22 % slower with 2 workers than with none on 2
    cores, README: Measured by hand; the photos are decoded in the main process then, ~2 % of a
    step), else 2. cores: default fst.cpuinfo.usable_cores()."""
    return 0 if (usable_cores() if cores is None else cores) <= 2 else 2


@dataclass
class LossConfig:
    content_weight: float = 1.0  # alpha
    style_weight: float = 5.0  # beta
    tv_weight: float = 10.0  # gamma
    content_layer: str = DEFAULT_CONTENT_LAYER
    # Reflect-pad images by this many pixels before VGG and crop the features back (see
    # LossNetwork.forward): keeps VGG's zero padding from teaching networks border lines.
    border_pad: int = 8
    # Fraction of the style image's width and height cut off each side before its Grams are taken.
    # Scans of paintings carry light canvas edges and frames; their long straight lines are strong
    # Gram statistics, and networks learn to paint them everywhere (Starry Night's 5 px light
    # border taught thin vertical streaks). 2% of each side removes such edges.
    style_margin: float = 0.02
    style_layers: dict[str, float] = field(default_factory=lambda: {name: 1.0 for name in DEFAULT_STYLE_LAYERS})
    # A collection's styles by name (a --style file's stem) -> their own beta; the others take
    # style_weight. One weight for all trades content for style differently per painting (README:
    # The classics collection).
    style_weight_of: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_args(cls, args) -> "LossConfig":
        """Loss options given on the command line over the defaults."""
        cfg = cls()
        for name in ("content_weight", "style_weight", "tv_weight", "content_layer", "style_margin"):
            if getattr(args, name, None) is not None:
                setattr(cfg, name, getattr(args, name))
        if getattr(args, "style_layers", None):
            cfg.style_layers = parse_style_layers(args.style_layers)
        for given in getattr(args, "style_weight_of", None) or []:  # --style-weight-of, repeatable
            cfg.style_weight_of.update(parse_style_weights(given))
        return cfg

    @classmethod
    def from_dict(cls, d: dict) -> "LossConfig":
        """A recorded configuration (a model's meta, a checkpoint). Records made before
        style_margin existed were trained on the whole style image: margin 0."""
        return cls(**{"style_margin": 0.0, **d})

    def as_dict(self) -> dict:
        return {
            "content_weight": self.content_weight,
            "style_weight": self.style_weight,
            "tv_weight": self.tv_weight,
            "content_layer": self.content_layer,
            "border_pad": self.border_pad,
            "style_margin": self.style_margin,
            "style_layers": dict(self.style_layers),
            "style_weight_of": dict(self.style_weight_of),
        }

    def style_weights_of(self, names: list[str]) -> list[float]:
        """Each named style's beta: its own (style_weight_of) or style_weight."""
        return [self.style_weight_of.get(name, self.style_weight) for name in names]


def parse_style_layers(text: str) -> dict[str, float]:
    """'relu1_2,relu2_2:2' -> {'relu1_2': 1.0, 'relu2_2': 2.0}."""
    return dict(parse_weighted(text, "--style-layers", "NAME or NAME:WEIGHT, WEIGHT >= 0", sep=":", default=1.0))


def parse_style_weights(text: str) -> dict[str, float]:
    """--style-weight-of 'starry_night=5,the_scream=6.5' -> {'starry_night': 5.0, 'the_scream': 6.5}."""
    usage = "STYLE=WEIGHT[,STYLE=WEIGHT...] with weights >= 0"
    weights = dict(parse_weighted(text, "--style-weight-of", usage))
    if not weights:
        raise FstError(f"--style-weight-of: no STYLE=WEIGHT in {shown(text)} (use {usage})")
    return weights


@dataclass
class TrainConfig:
    style: list[str]
    style_blend: list[float] | None = None
    data: str | None = None
    dataset: str | None = None  # "coco": stream a subset through `datasets`
    limit: int = 2000  # images fetched with --dataset coco
    name: str | None = None
    output: str | None = None  # final model; default runs/<name>/<name>.pth
    run_dir: str | None = None  # checkpoints, previews, log; default runs/<name>
    image_size: int = 256
    style_size: int = 512
    batch_size: int = 4
    epochs: int = 2
    steps: int | None = None
    lr: float = 1e-3
    # --add-style's default lr: it trains one style's norm parameters and channel maps, far fewer
    # and nearer their end than a whole network (README: Adding a style; 1e-2 was 4x slower there)
    add_style_lr: float = 0.05
    # "cosine": the learning rate falls from lr to 0 along a half cosine over the run (its --steps,
    # or its --time-limit if that ends it first); "none": constant lr.
    lr_decay: str = "none"
    # The weights the run saves, evaluates and previews: an exponential moving average of the
    # trained ones with this decay (fst.train.weight_average; its first steps average only the
    # steps taken), which averages out Adam's step-to-step noise: lower held-out style ratio and
    # content at the same step (README: Time to quality). 0: the last step's weights.
    ema: float = 0.98
    channels: int = DEFAULT_CHANNELS
    res_blocks: int = DEFAULT_RES_BLOCKS
    loss: LossConfig = field(default_factory=LossConfig)
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    channels_last: bool = False  # measured: no gain on CPU for these convs
    workers: int = field(default_factory=default_workers)
    flip: bool = True
    checkpoint_every: int = 200
    val_count: int = 4
    vgg_weights: str | None = None
    overwrite: bool = False
    # Start from this trained model's weights (a .pth; a collection: see init_style). "auto": the
    # shipped DEFAULT_INIT_COLLECTION where the run is one style at its width (fst.train.default_init),
    # else fresh weights; None ("none" on the command line): fresh weights.
    init: str | None = "auto"
    # --init COLLECTION:STYLE: the collection's style whose norm parameters the run starts from
    # (None: the style whose outputs are nearest the new painting, fst.train.nearest_style).
    init_style: str | None = None
    # A style collection (one network, each style its own norm parameters): each --style is a
    # style of its own, not a blend. add_style: the one --style joins the collection --init names,
    # only its own parameters trained (the shared weights and the other styles stay as they are):
    # its norm parameters and, with style_maps, its channel maps (fst.transformer.StyleNorm; a
    # collection without maps gets them, zero for its other styles).
    collection: bool = False
    add_style: bool = False
    style_maps: bool = True
    # Weight of the stability term (fst.stability: the output of a slightly moved, noised photo should
    # be the same move of the output; for video). 0: off, as measured best for photos (README: Video).
    stability_weight: float = 0.0
    # Held-out quality in the log (fst.heldout: fst evaluate's figures of the held-out photos) every
    # this many seconds of training time: the loop's wall time, the evaluations excluded. 0: off.
    eval_every: float = 0.0
    eval_size: int | None = None  # longest side of the held-out photos evaluated; None: their own size
    time_limit: float = 0.0  # stop at this much training time (seconds, as eval_every counts it); 0: none

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """A recorded configuration (a checkpoint's; its init is the file the run started from).
        Records made before ema existed saved the last step's weights: ema 0."""
        return cls(**{"init": None, "ema": 0.0, **d, "loss": LossConfig.from_dict(d["loss"])})


@dataclass
class OptimizeConfig:
    """`fst optimize`'s own settings (its loss: LossConfig)."""

    image_size: int = 256  # longest side of the output
    optimizer: str = "lbfgs"
    iterations: int = 300  # loss evaluations
    init: str = "content"  # content | noise | PATH
    save_every: int = 0
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"  # "auto" is fp32 here: L-BFGS wants exact gradients
