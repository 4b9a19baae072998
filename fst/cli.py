"""The `fst` command line. Argument parsing only: each command's module is imported when it runs,
so `fst stylize` with an ONNX model never imports torch.

User mistakes (FstError) print one line `fst: error: ...` and exit 2; Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from fst import FstError, __version__
from fst.config import JOHNSON_CHANNELS, LossConfig, OptimizeConfig, TrainConfig
from fst.video import DEFAULT_CRF, DEFAULT_STABILITY

VGG_HELP = "VGG16 loss-network weights: a Caffe-convention state_dict path, or 'torchvision' (default: $FST_VGG_WEIGHTS, else torchvision's download)"


def _add_loss_args(p: argparse.ArgumentParser, style_size_default: str, style_required: bool = True) -> None:
    """The loss options shared by train and optimize (defaults: fst.config.LossConfig; the
    parsed value is None when not given, and LossConfig.from_args keeps the default)."""
    loss = LossConfig()
    g = p.add_argument_group("loss (see README: normalisations)")
    g.add_argument("--style", action="append", required=style_required, metavar="IMAGE", help="style image; repeat to blend several")
    g.add_argument("--style-weights", type=_blend_weights, metavar="W,W,...", help="blend weights of the --style images")
    g.add_argument("--style-size", type=_size_or_pixels, metavar="PX", help=f"longest side of the style image(s): the style's scale (default {style_size_default})")
    g.add_argument("--style-margin", type=_margin, metavar="F",
                   help=f"fraction of the style image cut off each side first: scan edges, frames (default {loss.style_margin})")
    g.add_argument("--content-weight", type=_weight, help=f"alpha (default {loss.content_weight:g})")
    g.add_argument("--style-weight", type=_weight, help=f"beta (default {loss.style_weight:g})")
    g.add_argument("--tv-weight", type=_weight, help=f"gamma, total variation (default {loss.tv_weight:g})")
    g.add_argument("--content-layer", help=f"VGG layer of the content term (default {loss.content_layer})")
    g.add_argument("--style-layers", help="VGG layers of the style term, optionally weighted: relu1_2,relu2_2:2,... "
                                          f"(default {','.join(loss.style_layers)})")
    g.add_argument("--vgg-weights", metavar="PATH", help=VGG_HELP)


def _add_run_args(p: argparse.ArgumentParser, config) -> None:
    """--device, --amp and --seed of train and optimize, with the defaults of their config (an
    instance of fst.config's TrainConfig or OptimizeConfig) in the help."""
    p.add_argument("--device", type=_device, help=f"auto | cpu | cuda[:N] | mps (default {config.device})")
    p.add_argument("--amp", choices=["auto", "bf16", "fp16", "off"], help=f"autocast of the VGG passes (bf16 on the CPU: the network's too) (default {config.amp})")
    p.add_argument("--seed", type=int, help=f"(default {config.seed})")


def _device(text: str) -> str:
    """auto, cpu, cuda, cuda:N or mps; anything else (e.g. 'gpu') is a usage error, never a
    silent fall-back to the CPU."""
    name, _, index = text.partition(":")
    if name in ("auto", "cpu", "mps") and not index or name == "cuda" and (not index or index.isdigit()):
        return text
    raise argparse.ArgumentTypeError(f"{text!r} is not a device (use auto, cpu, cuda, cuda:N or mps)")


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None


def _blend_weights(text: str) -> list[float]:
    weights = _floats(text)
    if not weights or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise argparse.ArgumentTypeError(f"blend weights must be non-negative with a positive sum, got {text!r}")
    return weights


def _bounded(convert, positive: bool):
    """An argparse type: `convert` the text, then require > 0 (positive) or >= 0."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'a whole number' if convert is int else 'a number'}, got {text!r}") from None
        if not (value > 0 if positive else value >= 0):  # NaN fails both
            raise argparse.ArgumentTypeError(f"expected {'a positive number' if positive else '0 or more'}, got {text!r}")
        return value

    return parse


_positive_float = _bounded(float, positive=True)
_weight = _bounded(float, positive=False)  # loss weights: 0 turns a term off, negative is nonsense
_count = _bounded(int, positive=False)
_size_or_pixels = _bounded(int, positive=True)


def _size_or_own(text: str):
    return "own" if text == "own" else _size_or_pixels(text)


def _port(text: str) -> int:
    value = _bounded(int, positive=False)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {text!r}")
    return value


def _below(limit: float, what: str):
    """An argparse type: a number from 0 to below `limit` (`what` names it in the error)."""

    def parse(text: str) -> float:
        value = _bounded(float, positive=False)(text)
        if not value < limit:
            raise argparse.ArgumentTypeError(f"expected {what} from 0 to below {limit:g}, got {text!r}")
        return value

    return parse


_margin = _below(0.25, "a fraction")  # --style-margin: of each side
_decay = _below(1, "a decay")  # --ema


# command -> "module:function(args)"; imported only when that command runs.
COMMANDS = {
    "optimize": "fst.optimize:run",
    "train": "fst.train:run",
    "export": "fst.export:run",
    "stylize": "fst.stylize:run",
    "styles": "fst.styles:run_styles",
    "gallery": "fst.gallery:run",
    "serve": "fst.serve.main:run",
    "bench": "fst.bench:run",
    "evaluate": "fst.evaluate:run",
    "convert-vgg": "fst.vgg_caffe:run",
}


# Commands whose torch steps re-allocate the same large blocks over and over (fst.allocator).
KEEP_FREED_MEMORY = {"optimize", "train", "evaluate", "bench"}


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line like every other fst error."""

    def error(self, message: str):
        self.exit(2, f"fst: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="fst", description="Fast neural style transfer.")
    parser.add_argument("--version", action="version", version=f"fst {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    o = OptimizeConfig()
    p = sub.add_parser("optimize", help="classic per-image optimization (Gatys): the reference result")
    p.add_argument("content", help="content image")
    p.add_argument("-o", "--output", required=True, help="output image (.png, .jpg, .webp)")
    _add_loss_args(p, "the --image-size")
    _add_run_args(p, o)
    p.set_defaults(device=o.device, amp=o.amp, seed=o.seed)
    p.add_argument("--optimizer", choices=["lbfgs", "adam"], default=o.optimizer, help=f"(default {o.optimizer})")
    p.add_argument("--iterations", type=_size_or_pixels, default=o.iterations, help=f"loss evaluations (default {o.iterations})")
    p.add_argument("--lr", type=_positive_float, help="step size (L-BFGS default 1, Adam default 0.05)")
    p.add_argument("--image-size", type=_size_or_pixels, default=o.image_size, help=f"longest side of the output (default {o.image_size})")
    p.add_argument("--init", default=o.init, help="content | noise | PATH of an image to start from (default content)")
    p.add_argument("--preserve-color", action="store_true", help="luminance-only transfer: keep the content's colours")
    p.add_argument("--save-every", type=_count, default=o.save_every, metavar="N", help="also save OUTPUT_iterNNNNN.EXT every N evaluations")
    p.add_argument("--json", action="store_true", help="print the final loss terms as JSON")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--max-pixels", type=_size_or_pixels, default=None, help="refuse larger images (default 100M)")

    # Train: options not given are left out of the namespace (SUPPRESS); TrainConfig's defaults
    # apply, and with --resume the checkpoint's settings do.
    t = TrainConfig(style=[])
    p = sub.add_parser("train", help="train a fast style network", argument_default=argparse.SUPPRESS)
    _add_loss_args(p, str(t.style_size), style_required=False)  # not needed with --resume
    _add_run_args(p, t)
    p.add_argument("--data", metavar="DIR", help="folder of training photos (searched recursively)")
    p.add_argument("--dataset", choices=["coco"], help="stream a COCO subset through `datasets` (online)")
    p.add_argument("--limit", type=_size_or_pixels, help=f"images to fetch with --dataset coco (default {t.limit})")
    p.add_argument("--name", help="model name (default: the style file's name)")
    p.add_argument("--output", metavar="MODEL.pth", help="the final model (default RUN_DIR/NAME.pth)")
    p.add_argument("--run-dir", help="checkpoints, previews, log and the final model (default runs/NAME)")
    p.add_argument("--image-size", type=_size_or_pixels, help=f"training crop size (default {t.image_size})")
    p.add_argument("--batch-size", type=_size_or_pixels, help=f"(default {t.batch_size})")
    p.add_argument("--epochs", type=_size_or_pixels, help=f"passes over the photos (default {t.epochs})")
    p.add_argument("--steps", type=_size_or_pixels, help="train this many steps from the run's start (overrides --epochs)")
    p.add_argument("--lr", type=_positive_float, help=f"Adam's learning rate (default {t.lr:g}; "
                                                      f"{t.add_style_lr:g} with --add-style)")
    p.add_argument("--lr-decay", choices=["none", "cosine"], help="cosine: the learning rate falls to 0 along a half "
                   "cosine by the run's end (--steps, or --time-limit if it comes first); "
                   f"none: constant (default {t.lr_decay})")
    p.add_argument("--ema", type=_decay, metavar="DECAY", help="save, evaluate and preview a moving average of the "
                   f"weights with this decay per step (default {t.ema:g}; 0: the last step's weights)")
    p.add_argument("--channels", type=_size_or_pixels, help=f"width of the first layer (default {t.channels}; Johnson: {JOHNSON_CHANNELS})")
    p.add_argument("--res-blocks", type=_count, help=f"residual blocks (default {t.res_blocks})")
    p.add_argument("--workers", type=_count, help=f"DataLoader worker processes (default: 0 on 2 cores or fewer, else 2; here {t.workers})")
    p.add_argument("--no-flip", action="store_true", help="no random horizontal flips")
    p.add_argument("--checkpoint-every", type=_count, metavar="STEPS",
                   help=f"checkpoint and preview interval (default {t.checkpoint_every}; 0: only at the end)")
    p.add_argument("--resume", metavar="CHECKPOINT", help="continue a run exactly where it stopped, with its own settings "
                   "(only --steps, --epochs, --checkpoint-every, --output, --workers, --device, --vgg-weights, --eval-every, "
                   "--eval-size, --time-limit, --overwrite may change)")
    p.add_argument("--init", metavar="MODEL", help="start from a trained model's weights: a .pth or a shipped name "
                   "(fine-tune with another --style-weight, or a new style from a trained network: faster, see README); "
                   "from a collection, its convolutions and one style's norm parameters: COLLECTION:STYLE, or by "
                   "default the style nearest the new painting. Default auto: the shipped classics collection for a "
                   "one-style run of its width (16, 5 blocks), else fresh weights; none: fresh weights")
    p.add_argument("--collection", metavar="NAME", help="train one network holding every --style as a style of its own "
                   "(a style collection named NAME; not a blend)")
    p.add_argument("--style-weight-of", action="append", metavar="STYLE=W,...",
                   help="with --collection: these styles' own style weight (beta), the others --style-weight's; "
                        "STYLE is a --style file's name without extension (repeatable)")
    p.add_argument("--add-style", metavar="IMAGE", help="add this style to the collection --init names, training only "
                   "its own norm parameters and channel maps (the shared weights stay bit-identical); a style of the "
                   "same name already there is trained further instead")
    p.add_argument("--no-style-maps", dest="style_maps", action="store_false", default=argparse.SUPPRESS,
                   help="with --add-style to a collection without channel maps: train the norm parameters alone and "
                        "keep it without maps (its ONNX file as fast as before; the style gets less near its painting)")
    p.add_argument("--stability-weight", type=_weight, help="weight of the stability term for video: a slightly moved "
                   f"and noised photo's output should be the same move of the output (default {t.stability_weight:g}: off)")
    g = p.add_argument_group("held-out quality against training time (training time: the loop's wall time, evaluations excluded)")
    g.add_argument("--eval-every", type=_positive_float, metavar="SECONDS",
                   help="write fst evaluate's figures of the held-out photos (style ratio, content) to the run's log.jsonl "
                        "at the start, every SECONDS of training time and at the end (default: off)")
    g.add_argument("--eval-size", type=_size_or_own, metavar="PX", help="longest side of the held-out photos evaluated, or own (default own)")
    g.add_argument("--time-limit", type=_positive_float, metavar="SECONDS",
                   help="stop after this much training time, or at --steps/--epochs if that comes first; the final model is saved")
    p.add_argument("--overwrite", action="store_true", help="replace an existing final model and run folder")

    p = sub.add_parser("export", help="export a trained model to ONNX and verify it")
    p.add_argument("model", help="a .pth model from fst train")
    p.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--fp16", action="store_true", help="also write NAME.fp16.onnx (fp16 weights)")
    p.add_argument("--int8", action="store_true", help="also write NAME.int8.onnx (static int8, calibrated on photos)")
    p.add_argument("--calibration", metavar="DIR", help="photos for int8 calibration (required with --int8)")
    p.add_argument("--tolerance", type=float, default=0.05, help="largest allowed |ORT - PyTorch| on the 0..255 scale")
    p.add_argument("--overwrite", action="store_true")

    p = sub.add_parser("stylize", help="stylize images with a trained or shipped model")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    p.add_argument("-m", "--model", help="shipped style name, .pth or .onnx; MODEL:STYLE for a style of a collection "
                   "(default: the default shipped style)")
    p.add_argument("--style", metavar="NAME", help="the style of a collection model (default: its first; `fst styles MODEL` lists them)")
    p.add_argument("--mix", metavar="NAME=W,...", help="mix styles of a collection, e.g. starry_night=0.6,the_scream=0.4 "
                   "(weights normalised to sum 1)")
    p.add_argument("-o", "--output", help="output file (one input) or folder (default: NAME_STYLE.png beside each input)")
    p.add_argument("--backend", choices=["onnx", "torch"], default="onnx")
    p.add_argument("--device", type=_device, default="auto", help="auto | cpu | cuda[:N] (default auto; mps: --backend torch)")
    p.add_argument("--max-size", type=_size_or_pixels, help="downscale so the longest side is at most this")
    p.add_argument("--strength", type=float, default=1.0, help="0..1, blend with the original")
    p.add_argument("--preserve-color", action="store_true", help="stylized luminance, original colours")
    p.add_argument("--tile", type=int, default=0, metavar="N", help="stylize in overlapping N-pixel tiles (huge images)")
    p.add_argument("--stroke-scale", type=float, default=1.0, metavar="S",
                   help="strokes S times larger (1..16, default 1): stylize at 1/S of the size, then back to full "
                        "size guided by the photo (large photos; faster too)")
    p.add_argument("--format", choices=["png", "jpg", "webp"], help="format of outputs named by fst (no -o, or -o FOLDER; default png)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--skip-existing", action="store_true", help="leave outputs that exist as they are (finish an interrupted folder)")
    p.add_argument("--max-pixels", type=_size_or_pixels, default=None, help="refuse larger images (default 100M)")
    g = p.add_argument_group("video (mp4, mov, mkv, webm, avi...: H.264 MP4 out, audio copied; needs fst[video])")
    g.add_argument("--crf", type=_count, help=f"H.264 quality, lower is better and bigger (default {DEFAULT_CRF})")
    g.add_argument("--start", type=_bounded(float, positive=False), metavar="SECONDS", help="begin this far into the video (previews)")
    g.add_argument("--duration", type=_positive_float, metavar="SECONDS", help="stylize only this long (previews)")
    g.add_argument("--stability", type=float, metavar="W", help="0..<1, weight of the flow-warped previous frame "
                                                                  f"where the motion is reliable (default {DEFAULT_STABILITY})")
    g.add_argument("--per-frame", action="store_true", help="no stabilization: each frame on its own (flickers)")

    p = sub.add_parser("styles", help="list the shipped styles and collections, or a model's styles")
    p.add_argument("models", nargs="*", metavar="MODEL", help="list these models' styles (a collection's names)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("gallery", help="one photo through every shipped style, for README")
    p.add_argument("photo", help="the photo")
    p.add_argument("-o", "--output", default="export/gallery", help="folder (default export/gallery)")
    p.add_argument("--image-size", "--size", type=_size_or_pixels, default=384, help="longest side (default 384)")
    p.add_argument("--overwrite", action="store_true")

    from fst.serve.config import DEFAULTS as S  # a plain dataclass: one source of the server's defaults

    p = sub.add_parser("serve", help="HTTP inference server with a web page")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_port, default=8000, help="0..65535 (default 8000)")
    p.add_argument("--models", metavar="DIR", help="folder of .onnx models (default: the shipped export/)")
    p.add_argument("--workers", type=_size_or_pixels, default=S.workers, help=f"inference threads: jobs running at once (default {S.workers})")
    p.add_argument("--queue", type=_count, default=S.queue, help=f"jobs allowed to wait for a worker; more get 503 (default {S.queue})")
    p.add_argument("--max-body", type=_size_or_pixels, default=S.max_body, help=f"bytes of one request (default {S.max_body // 2**20} MiB)")
    p.add_argument("--body-memory", type=_size_or_pixels, default=S.body_memory,
                   help=f"bytes of all request bodies held at once; more get 503 (default {S.body_memory // 2**20} MiB)")
    p.add_argument("--body-timeout", type=_positive_float, default=S.body_timeout,
                   help=f"seconds to receive a whole request body, else 408 (default {S.body_timeout:g})")
    p.add_argument("--max-pixels", type=_size_or_pixels, default=S.max_pixels, help=f"input pixels (default {S.max_pixels // 10**6}M)")
    p.add_argument("--max-size", type=_size_or_pixels, default=S.max_size, help=f"largest output side (default {S.max_size})")
    p.add_argument("--timeout", type=_positive_float, default=S.timeout, help=f"seconds from a complete body to the answer, else 504 (default {S.timeout:g})")
    p.add_argument("--grace", type=_bounded(float, positive=False), default=S.grace,
                   help=f"seconds running jobs get to finish after SIGTERM (default {S.grace:g})")
    p.add_argument("--threads", type=_size_or_pixels, help="ONNX Runtime intra-op threads per inference (default: cores / workers)")

    p = sub.add_parser("evaluate", help="style and content terms of a model's outputs on photos; a video's flicker")
    p.add_argument("models", nargs="*", metavar="MODEL", help="shipped style names, .pth or .onnx files")
    p.add_argument("--photos", "--data", nargs="+", metavar="PATH", help="photos, folders or globs")
    p.add_argument("--video", nargs=2, metavar=("SRC", "OUT"), help="instead: the warping error (flicker) of the "
                                                                     "stylized video OUT beside its source SRC's")
    p.add_argument("--start", type=_bounded(float, positive=False), default=0.0, metavar="SECONDS",
                   help="with --video: OUT was made from SRC from this time on (fst stylize --start)")
    p.add_argument("--held-out", action="store_true", help="only the photos the model's training held out")
    p.add_argument("--style", metavar="PAINTING", help="the style image (default: the painting the model records: "
                                                       "a shipped style's, or the file it was trained on)")
    p.add_argument("--image-size", "--size", type=_size_or_own, default=256,
                   help="longest side of the photos, or 'own': each photo at its own size (default 256)")
    p.add_argument("--vgg-weights", metavar="PATH", help=VGG_HELP)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("convert-vgg", help="the original Oxford VGG16 .caffemodel -> the loss network's weights file")
    p.add_argument("caffemodel", help="VGG_ILSVRC_16_layers.caffemodel (the VGG group's Caffe release)")
    p.add_argument("-o", "--output", required=True, help="the state_dict to write (.pth), for --vgg-weights / FST_VGG_WEIGHTS")
    p.add_argument("--overwrite", action="store_true")

    p = sub.add_parser("bench", help="measure speed against pytorch/examples and the PyTorch tutorial")
    p.add_argument("--quick", action="store_true", help="small sizes and few repeats (CI)")
    p.add_argument("--markdown", action="store_true", help="print the tables as README's Performance section shows them")
    p.add_argument("--json", nargs="?", const="-", metavar="FILE",
                   help="the whole report as JSON: printed instead of the tables, or written to FILE beside them")
    p.add_argument("--device", default="cpu", help="cpu | cuda (default cpu)")
    p.add_argument("--model", help="model to time: shipped style name, .onnx or .pth (default: the default shipped style)")
    p.add_argument("--vgg-weights", metavar="PATH", help=VGG_HELP)
    p.add_argument("--repeats", type=int, help="timed repeats per figure, after warm-up (default 5 for peak, "
                                               "stylize and command, 3 for train and optimize; 2-3 with --quick)")
    p.add_argument("--only", metavar="SECTIONS", help="comma list of peak,stylize,command,train,optimize,video,quality "
                                                      "(stylize and train bring peak along; video and quality run only when named)")
    p.add_argument("--video", metavar="CLIP", help="the video section's clip (default ../shared/data/videos/box.mp4 "
                                                   "beside the repository)")
    p.add_argument("--photos", metavar="DIR", help="the quality section's photos: the folder --model was trained on "
                                                   "(default ../shared/data/photos beside the repository; --quick: the test photos)")
    p.add_argument("--minutes", type=_positive_float, metavar="M",
                   help="the quality section's training time per side (default 15; --quick: 4 s)")
    p.add_argument("--init", metavar="MODEL", help="the quality section's fst train starts from this trained network "
                                                   "instead of from scratch: another style's (e.g. great_wave), or a "
                                                   "collection (its style nearest the painting); never one trained on "
                                                   "--model's painting")
    p.add_argument("--style-weight", type=_positive_float, metavar="W",
                   help="the quality section's style weight for both sides (default: the one --model was trained with)")
    p.add_argument("--add-style", action="store_true", help="the quality section's fst side adds --model's painting "
                   "to the collection --init names, training that style's own parameters alone (fst train --add-style)")
    p.add_argument("--isa", choices=["native", "avx2"], default="native",
                   help="avx2: run as a CPU with AVX2 and FMA but no AVX-512, AMX or bf16 would, by masking "
                        "CPUID for every library (needs cpuid_fault and a C compiler; README: Performance)")
    p.add_argument("--lr", type=_positive_float, help="the quality section's fst learning rate (default: the one "
                   "--model was trained with; with --add-style, fst train's --add-style default)")
    return parser


# Top-level modules of the extras (pyproject.toml) -> the extra that installs them.
EXTRAS = {"torch": "train", "torchvision": "train", "onnx": "train", "datasets": "train", "av": "video", "cv2": "video"}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "bench":  # as typed: `fst bench --isa` runs it again under the CPUID mask
        args.raw_argv = list(sys.argv[1:] if argv is None else argv)
    if args.command in KEEP_FREED_MEMORY:
        from fst.allocator import tune_allocator

        tune_allocator()
    try:
        module_name, function = COMMANDS[args.command].split(":")
        status = int(getattr(importlib.import_module(module_name), function)(args) or 0)
        sys.stdout.flush()  # here, so that a closed pipe is caught below
        return status
    except FstError as e:
        print(f"fst: error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        extra = EXTRAS.get((e.name or "").split(".")[0])
        if extra is None:
            raise
        print(f"fst: error: fst {args.command} needs the {extra} extra ({e.name} is not installed): "
              f"pip install 'fst[{extra}]'", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fst: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `fst styles | head`: the reader has gone, which is no error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
        return 0
    except OSError as e:  # permissions, a full disk, a path that is a file...
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"fst: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except MemoryError:
        print("fst: error: out of memory (try a smaller --image-size, --max-size or --tile)", file=sys.stderr)
        return 2
