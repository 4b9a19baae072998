"""What narrower or shallower transformer networks cost (issue 12's cheaper-network front).

    python -m fst.bench.networks [--networks 16x5,12x5,16x3,8x5] [--size 1024] [--train-size 256]

For each network WIDTHxBLOCKS (random weights: timing only), interleaved rounds on this machine:
    GMAC/MP   multiply-accumulates per megapixel (fst.transformer.macs_per_pixel)
    stylize   ONNX Runtime on one SIZE² image, fst stylize's session (fst.stylize.OnnxStylizer),
              the network only, warm
    train     one fst training step (fst.train.train_step), batch 4 at TRAIN_SIZE², with the
              precision `fst train --amp auto` picks here
Speeds are also given as the first network's time / this one's. Quality is not measured here: it
needs trained networks (README: Narrower networks).
"""

from __future__ import annotations

import argparse

import numpy as np

from fst.bench.harness import Timer, log, median


def parse_networks(text: str) -> list[tuple[int, int]]:
    """'16x5,12x5' -> [(16, 5), (12, 5)]; widths >= 1, blocks >= 0."""
    try:
        networks = [(int(w), int(b)) for w, _, b in (part.strip().partition("x") for part in text.split(","))]
    except ValueError:
        networks = []
    if not networks or any(w < 1 or b < 0 for w, b in networks):
        raise SystemExit(f"--networks: {text!r}: use WIDTHxBLOCKS,... e.g. 16x5,12x5 (width >= 1)")
    return networks


def measure(networks: list[tuple[int, int]], size: int, train_size: int, repeats: int) -> list[dict]:
    import torch

    from fst.bench.inputs import Inputs
    from fst.config import LossConfig
    from fst.export import to_onnx_bytes
    from fst.losses import PerceptualLoss
    from fst.runtime import pick_amp
    from fst.stylize import OnnxStylizer
    from fst.train import train_step
    from fst.transformer import TransformerNet, macs_per_pixel
    from fst.vgg import load_loss_network

    timer, cpu = Timer(torch.device("cpu")), torch.device("cpu")
    inputs = Inputs()  # fst bench's test photos and painting
    image = inputs.photos(1, size)[0]
    style = torch.from_numpy(inputs.style(256))[None]
    criterion = PerceptualLoss(load_loss_network(None), [style], LossConfig(), amp_dtype=pick_amp("auto", cpu))
    batch = torch.from_numpy(np.stack(inputs.photos(4, train_size)))
    stylize_jobs, train_jobs = {}, {}
    for width, blocks in networks:
        torch.manual_seed(0)
        net = TransformerNet(width, blocks)  # instance norm without running statistics: train/eval alike
        session = OnnxStylizer(to_onnx_bytes(net), device="cpu")
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        name = f"{width}x{blocks}"
        stylize_jobs[name] = lambda s=session: s(image)
        train_jobs[name] = lambda n=net, o=optimizer: train_step(n, criterion, o, batch)
    log(f"networks: stylize {size}², {len(networks)} networks, 1 warm-up + {repeats} interleaved rounds")
    stylized = timer.run_interleaved(stylize_jobs, 1, repeats)
    log(f"networks: training step {train_size}², batch 4, {criterion.amp_dtype or 'float32'}")
    trained = timer.run_interleaved(train_jobs, 1, repeats)
    return [{"network": name, "width": w, "blocks": b, "gmac_per_mp": macs_per_pixel(w, b) / 1e3,
             "stylize_s": median(stylized[name][0]), "train_s": median(trained[name][0])}
            for (w, b), name in zip(networks, stylize_jobs)]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m fst.bench.networks", description=__doc__.split("\n\n")[0])
    p.add_argument("--networks", default="16x5,12x5,16x3,8x5", help="WIDTHxBLOCKS,... (the first: the reference)")
    p.add_argument("--size", type=int, default=1024, help="stylize: the image's side")
    p.add_argument("--train-size", type=int, default=256, help="training step: the crops' side")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    rows = measure(parse_networks(args.networks), args.size, args.train_size, args.repeats)
    first = rows[0]
    print(f"| network | GMAC per megapixel | stylize {args.size}² | training step {args.train_size}² |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(f"| width {r['width']}, {r['blocks']} blocks | {r['gmac_per_mp']:.1f} | {r['stylize_s'] * 1e3:.0f} ms "
              f"({first['stylize_s'] / r['stylize_s']:.2f}×) | {r['train_s']:.2f} s ({first['train_s'] / r['train_s']:.2f}×) |")


if __name__ == "__main__":
    main()
