"""fst train: the network, the data, exact resume, distributed ranks, and the CLI."""

from __future__ import annotations

import io
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fst import FstError
from fst.data import PhotoFolder, cache_dataset_images, coco_subset, split_validation
from fst.losses import LossConfig, PerceptualLoss
from fst.train import TrainConfig, train
from fst.transformer import BORDER_MARGIN, TransformerNet, load_model, macs_per_pixel

from conftest import vgg_convention

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory) -> Path:
    """Eight small photos in a nested layout (crops of the fixture photos), plus one broken file."""
    root = tmp_path_factory.mktemp("photos")
    sources = sorted(p for p in FIXTURES.glob("*.jpg") if "starry" not in p.name)
    assert len(sources) >= 3
    for i in range(8):
        img = Image.open(sources[i % len(sources)]).convert("RGB")
        w, h = img.size
        img = img.crop((i * 7 % (w // 4), i * 5 % (h // 4), w - i * 3 % 9, h))
        folder = root / ("a" if i < 4 else "b/c")
        folder.mkdir(parents=True, exist_ok=True)
        img.resize((96, 72)).save(folder / f"photo{i}.jpg", quality=90)
    (root / "b" / "broken.jpg").write_bytes(b"this is not a jpeg")
    return root


def tiny_config(tmp: Path, photo_dir: Path, **over) -> TrainConfig:
    cfg = TrainConfig(
        style=[str(FIXTURES / "starry_night.jpg")],
        data=str(photo_dir),
        name="tiny",
        output=str(tmp / "tiny.pth"),
        run_dir=str(tmp / "run"),
        image_size=32,
        style_size=64,
        batch_size=2,
        steps=4,
        channels=4,
        res_blocks=1,
        workers=0,
        checkpoint_every=2,
        val_count=1,
        overwrite=True,
    )
    for k, v in over.items():
        setattr(cfg, k, v)
    return cfg


def test_transformer_any_size_and_range():
    from fst.transformer import MIN_SIDE

    net = TransformerNet(8, 2).eval()
    for h, w in [(MIN_SIDE, MIN_SIDE), (MIN_SIDE + 1, MIN_SIDE + 3), (33, 50), (64, 97), (128, 128)]:
        with torch.no_grad():
            y = net(torch.rand(2, 3, h, w))
        assert y.shape == (2, 3, h, w)
        assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    # instance norm without running statistics: eval and train give the same output
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(net.eval()(x), net.train()(x))
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in net.modules())


def test_output_conv_runs_channels_last_and_computes_the_plain_conv():
    """The 9x9 output conv takes the channels_last path on the CPU (a speed measure): its output and
    every gradient equal the plain NCHW conv's to float rounding, and the output is NCHW again."""
    from fst.transformer import ConvLayer, OutputConv

    torch.manual_seed(0)
    fast = OutputConv(16, 3, 9)
    plain = ConvLayer(16, 3, 9)
    plain.load_state_dict(fast.state_dict())  # the same keys: old models load
    x = torch.rand(2, 16, 40, 52)
    results = []
    for layer in (fast, plain):
        xg = x.clone().requires_grad_(True)
        y = layer(xg)
        (y * torch.linspace(-1, 1, y.numel()).reshape(y.shape)).sum().backward()
        results.append((y.detach(), xg.grad, layer[1].weight.grad, layer[1].bias.grad))
        assert y.is_contiguous() and y.shape == (2, 3, 40, 52)
    for a, b in zip(*results):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()))
    assert isinstance(TransformerNet(4, 1).decoder[-1], OutputConv)


def test_min_side_agrees_between_torch_and_torch_free_modules():
    from fst.stylize import MIN_SIDE as STYLIZE_MIN_SIDE
    from fst.transformer import MIN_SIDE

    assert STYLIZE_MIN_SIDE == MIN_SIDE
    with pytest.raises(RuntimeError):  # one pixel less cannot be reflect-padded
        TransformerNet(4, 1)(torch.rand(1, 3, MIN_SIDE - 1, MIN_SIDE - 1))


def test_macs_per_pixel_matches_a_count_of_the_convolutions():
    net = TransformerNet(16, 5)
    counted = 0
    h = w = 256

    def hook(module, inputs, output):
        nonlocal counted
        k = module.kernel_size[0] * module.kernel_size[1]
        counted += output.shape[2] * output.shape[3] * module.out_channels * module.in_channels * k

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        net(torch.rand(1, 3, h, w))
    for handle in handles:
        handle.remove()
    side = h + 2 * BORDER_MARGIN  # forward works on the picture plus its reflected margin
    assert counted / (side * side) == pytest.approx(macs_per_pixel(16, 5), rel=1e-6)


def test_photo_folder_is_recursive_skips_broken_and_is_deterministic(photo_dir):
    messages = []
    ds = PhotoFolder.from_folder(str(photo_dir), 32, seed=3, log=messages.append)
    assert len(ds) == 8  # nested folders searched, the broken file skipped...
    assert any("skipped 1" in m for m in messages)  # ...and counted in the log
    a, b = ds[5], ds[5]
    assert a.shape == (3, 32, 32) and torch.equal(a, b)
    ds.epoch = 1
    assert not torch.equal(ds[5], a)  # a new epoch, a new crop
    train_paths, held = split_validation(ds.paths, 2)
    assert len(held) == 2 and not set(held) & set(train_paths)


def test_folder_without_images_is_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(FstError, match="no readable images"):
        PhotoFolder.from_folder(str(tmp_path), 32)


def test_dataset_adapter_streams_and_caches(tmp_path):
    """The --dataset path: a real `datasets` streaming dataset (local parquet), cached as files."""
    import datasets

    images = []
    for p in sorted(FIXTURES.glob("*.jpg"))[:3]:
        buf = io.BytesIO()
        Image.open(p).convert("RGB").save(buf, "JPEG")
        images.append({"bytes": buf.getvalue(), "path": None})
    ds = datasets.Dataset.from_dict({"image": images}).cast_column("image", datasets.Image())
    repo = tmp_path / "local_coco" / "data"
    repo.mkdir(parents=True)
    ds.to_parquet(str(repo / "train-00000.parquet"))
    out = coco_subset(2, cache_root=str(tmp_path / "cache"), dataset_id=str(tmp_path / "local_coco"))
    files = sorted(os.listdir(out))
    assert files == ["0000000.jpg", "0000001.jpg"]
    mtime = os.path.getmtime(os.path.join(out, files[0]))
    # cached: a second call with the same limit reads nothing from the dataset
    assert coco_subset(2, cache_root=str(tmp_path / "cache"), dataset_id=str(tmp_path / "local_coco")) == out
    assert os.path.getmtime(os.path.join(out, files[0])) == mtime
    with pytest.raises(FstError, match="holds no images|does not hold images"):
        cache_dataset_images([{"image": "text"}], str(tmp_path / "bad"), 1)


def test_bf16_autocast_keeps_the_loss_close_to_fp32(loss_network):
    style = torch.from_numpy(np.asarray(Image.open(FIXTURES / "starry_night.jpg").convert("RGB").resize((96, 64)),
                                        dtype=np.float32).transpose(2, 0, 1) / 255)[None]
    torch.manual_seed(0)
    x, c = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    fp32 = PerceptualLoss(loss_network, [style], LossConfig())(x, c)
    bf16 = PerceptualLoss(loss_network, [style], LossConfig(), amp_dtype=torch.bfloat16)(x, c)
    for k in ("content", "style", "total"):
        assert float(bf16[k]) == pytest.approx(float(fp32[k]), rel=0.05), k


def test_the_network_runs_under_the_losses_bf16_autocast_on_the_cpu(loss_network):
    """fst train's network pass (network_forward) follows the loss: as written where VGG runs
    float32; under bf16 autocast where the loss autocasts VGG to bf16 on the CPU, its output float32
    and within bf16's precision of the float32 output, on a shipped network and real photo crops.
    Bounds: outputs lie in [0, 1], where bf16's spacing is at most 2^-8 (~1 of 255 levels); the last
    layer's rounding alone is up to half that per pixel, and each earlier layer's rounded inputs add
    about as much again, partly averaging out: mean |difference| <= 2^-8, largest <= 2^-5."""
    from fst.train import network_forward
    from fst.transformer import TRAINING_MARGIN

    net, _ = load_model(str(REPO / "checkpoints" / "starry_night.pth"))
    photos = [np.asarray(Image.open(FIXTURES / name).convert("RGB").resize((64, 64)), dtype=np.float32) / 255
              for name in ("kitten.jpg", "butterfly.jpg")]
    batch = torch.from_numpy(np.stack(photos).transpose(0, 3, 1, 2).copy())
    style = torch.rand(1, 3, 64, 64)
    fp32 = PerceptualLoss(loss_network, [style], LossConfig())
    bf16 = PerceptualLoss(loss_network, [style], LossConfig(), amp_dtype=torch.bfloat16)
    plain = network_forward(net, fp32)(batch)
    assert torch.equal(plain, net(batch, margin=TRAINING_MARGIN))
    seen = []
    hooks = [m.register_forward_hook(lambda m, a, out: seen.append(out.dtype))
             for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    low = network_forward(net, bf16)(batch)
    for hook in hooks:
        hook.remove()
    assert seen and set(seen) == {torch.bfloat16} and low.dtype == torch.float32
    difference = (low - plain).detach().abs()
    assert float(difference.mean()) <= 2**-8 and float(difference.max()) <= 2**-5
    assert float(difference.max()) > 0  # it did run in bf16


def test_workers_default_to_none_on_two_cores_or_fewer():
    """DataLoader workers would take the cores from torch's threads on a 2-core machine
    (README: Measured by hand); a config made here gets this machine's answer."""
    from fst.config import default_workers
    from fst.cpuinfo import usable_cores

    assert [default_workers(n) for n in (1, 2, 3, 16)] == [0, 0, 2, 2]
    assert TrainConfig(style=["x.jpg"]).workers == (0 if usable_cores() <= 2 else 2)


def test_resume_is_exact(tmp_path, photo_dir):
    """N steps in one go == N/2 steps, then --resume, then N/2 more: identical weights."""
    straight = train(tiny_config(tmp_path / "a", photo_dir, steps=6), log=lambda *a: None)
    half = tiny_config(tmp_path / "b", photo_dir, steps=3)
    train(half, log=lambda *a: None)
    resumed = train(tiny_config(tmp_path / "b", photo_dir, steps=6), resume=str(tmp_path / "b" / "run" / "checkpoint.pth"),
                    log=lambda *a: None)
    a = torch.load(straight, weights_only=True)["model"]
    b = torch.load(resumed, weights_only=True)["model"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # and training did move the weights
    fresh = TransformerNet(4, 1).state_dict()
    assert any(not torch.equal(a[k], fresh[k]) for k in a if k in fresh and a[k].shape == fresh[k].shape)


def test_ema_saves_the_moving_average_of_the_trained_weights(tmp_path, photo_dir):
    """--ema D: the final model (and a checkpoint as load_model reads it) is the average of the
    trained weights after each step k (w_k): a_1 = w_1, a_k = lerp(a_(k-1), w_k, 1 - min(D, (1 + n) / (10 + n)))
    with n = k - 1 (the warm-up, then D from n = 3 on for D = 0.3); the training itself is unchanged."""
    steps = [train(tiny_config(tmp_path / f"w{k}", photo_dir, steps=k, ema=0.0), log=lambda *a: None) for k in range(1, 5)]
    trained = [torch.load(p, weights_only=True)["model"] for p in steps]
    expected = {k: v.clone() for k, v in trained[0].items()}
    for n, w in enumerate(trained[1:], start=1):
        weight = 1 - min(0.3, (1 + n) / (10 + n))
        for key in expected:
            expected[key].lerp_(w[key], weight)
    path = train(tiny_config(tmp_path / "ema", photo_dir, steps=4, ema=0.3), log=lambda *a: None)
    saved = torch.load(path, weights_only=True)["model"]
    assert all(torch.allclose(saved[k], expected[k], rtol=0, atol=1e-7) for k in expected)
    assert any((expected[k] - trained[-1][k]).abs().max() > 1e-4 for k in expected)  # the average is not the last step
    ckpt = torch.load(tmp_path / "ema" / "run" / "checkpoint.pth", weights_only=True)
    assert all(torch.equal(ckpt["model"][k], trained[-1][k]) for k in expected)  # trained as without --ema
    assert ckpt["averaged_count"] == 4
    net, _ = load_model(str(tmp_path / "ema" / "run" / "checkpoint.pth"))
    assert all(torch.equal(v, saved[k]) for k, v in net.state_dict().items())


def test_cosine_lr_decay_follows_the_run_and_its_time_limit(tmp_path, photo_dir):
    """--lr-decay cosine: the logged learning rate of step k of n is lr * (1 + cos(pi k / n)) / 2; a
    time limit reached earlier than the steps sets the progress; none keeps lr constant."""
    from fst.train import set_lr

    train(tiny_config(tmp_path, photo_dir, steps=6, lr=2e-3, lr_decay="cosine"), log=lambda *a: None)
    with open(tmp_path / "run" / "log.jsonl") as f:
        logged = [r["lr"] for r in map(json.loads, f) if "lr" in r]
    assert logged == pytest.approx([2e-3 * (1 + math.cos(math.pi * k / 6)) / 2 for k in range(6)], rel=1e-12)

    optimizer = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1.0)
    timed = TrainConfig(style=[], lr=1.0, lr_decay="cosine", time_limit=100.0)
    assert set_lr(optimizer, timed, 10, 50.0, 1000) == pytest.approx(0.5)  # time ahead of steps
    assert set_lr(optimizer, timed, 900, 50.0, 1000) == pytest.approx((1 + math.cos(0.9 * math.pi)) / 2)
    assert set_lr(optimizer, timed, 10, 130.0, 1000) == 0.0  # past the limit: not negative
    assert optimizer.param_groups[0]["lr"] == 0.0
    assert set_lr(optimizer, TrainConfig(style=[], lr=0.3), 999, 0.0, 1000) == 0.3


def test_final_model_loads_weights_only_with_metadata(tmp_path, photo_dir):
    path = train(tiny_config(tmp_path, photo_dir, steps=2), log=lambda *a: None)
    state = torch.load(path, weights_only=True)  # no pickled code
    meta = state["meta"]
    assert meta["architecture"] == {"channels": 4, "res_blocks": 1}
    assert meta["vgg"].startswith(vgg_convention() + ":")
    assert len(meta["style_sha256"][0]) == 64 and meta["steps"] == 2
    assert set(meta["final_loss"]) == {"content", "style", "tv", "total"}
    assert meta["config"]["loss"]["style_margin"] == 0.02  # how the style target was cut, for evaluate and resume
    net, _ = load_model(path)
    assert net(torch.rand(1, 3, 20, 30)).shape == (1, 3, 20, 30)
    run = tmp_path / "run"
    log_lines = (run / "log.jsonl").read_text().splitlines()
    assert len(log_lines) == 2 and json.loads(log_lines[-1])["step"] == 2
    assert (run / "preview_000002.png").exists() and (run / "preview_final.png").exists()
    ckpt = torch.load(run / "checkpoint.pth", weights_only=True)
    assert {"model", "optimizer", "step", "epoch", "batch_in_epoch", "rng", "config", "style_sha256", "vgg"} <= set(ckpt)


def _cli_env():
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def test_cli_train_refuses_to_overwrite_and_reports_bad_input(tmp_path, photo_dir):
    existing = tmp_path / "model.pth"
    existing.write_bytes(b"precious")
    base = [sys.executable, "-m", "fst", "train", "--style", str(FIXTURES / "starry_night.jpg"), "--data", str(photo_dir),
            "--image-size", "32", "--steps", "1", "--channels", "4", "--workers", "0", "--run-dir", str(tmp_path / "run")]
    r = subprocess.run(base + ["--output", str(existing)], capture_output=True, text=True, env=_cli_env())
    assert r.returncode == 2 and existing.read_bytes() == b"precious"
    assert r.stderr.strip().startswith("fst: error:") and "already exists" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(base[:7] + [str(tmp_path / "nowhere")] + base[8:] + ["--output", str(tmp_path / "x.pth")],
                       capture_output=True, text=True, env=_cli_env())
    assert r.returncode == 2 and "no such folder" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(base + ["--style-margin", "0.3", "--output", str(tmp_path / "x.pth")], capture_output=True, text=True, env=_cli_env())
    assert r.returncode == 2 and "--style-margin" in r.stderr and "below 0.25" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = subprocess.run(base + ["--ema", "1", "--output", str(tmp_path / "x.pth")], capture_output=True, text=True, env=_cli_env())
    assert r.returncode == 2 and "--ema" in r.stderr and "below 1" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_cli_train_init_from_a_shipped_network_by_name(tmp_path, photo_dir):
    """--init starry_night: the shipped network's file, recorded in the new model's meta; a name that
    is neither a file nor a shipped style is one line."""
    base = [sys.executable, "-m", "fst", "train", "--style", str(FIXTURES / "starry_night.jpg"), "--data", str(photo_dir),
            "--image-size", "32", "--steps", "1", "--workers", "0", "--checkpoint-every", "0", "--run-dir", str(tmp_path / "run"),
            "--output", str(tmp_path / "new.pth")]
    r = subprocess.run(base + ["--init", "starry_night"], capture_output=True, text=True, env=_cli_env())
    assert r.returncode == 0, r.stderr[-2000:]
    meta = torch.load(tmp_path / "new.pth", weights_only=True)["meta"]
    assert meta["init"] == str(REPO / "checkpoints" / "starry_night.pth")
    r = subprocess.run(base + ["--init", "no_such_style", "--overwrite"], capture_output=True, text=True, env=_cli_env())
    assert r.returncode == 2 and "no_such_style" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_ctrl_c_writes_a_checkpoint(tmp_path, photo_dir):
    cmd = [sys.executable, "-m", "fst", "train", "--style", str(FIXTURES / "starry_night.jpg"), "--data", str(photo_dir),
           "--image-size", "32", "--style-size", "64", "--steps", "100000", "--channels", "4", "--res-blocks", "1",
           "--batch-size", "2", "--workers", "0", "--checkpoint-every", "0", "--output", str(tmp_path / "m.pth"),
           "--run-dir", str(tmp_path / "run")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_cli_env())
    log = tmp_path / "run" / "log.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and len(log.read_text().splitlines()) >= 3):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-500:]
    assert "Traceback" not in err and "--resume" in out + err
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pth", weights_only=True)
    assert ckpt["step"] >= 3
    # the step in flight finished: it is logged, and the checkpoint holds exactly the logged steps
    steps = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    assert steps == list(range(1, ckpt["step"] + 1))


def test_distributed_two_cpu_ranks_stay_identical(tmp_path, photo_dir):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "fst", "train",
           "--style", str(FIXTURES / "starry_night.jpg"), "--data", str(photo_dir), "--image-size", "32", "--style-size", "64",
           "--steps", "3", "--channels", "4", "--res-blocks", "1", "--batch-size", "2", "--workers", "0",
           "--checkpoint-every", "2", "--device", "cpu", "--output", str(tmp_path / "ddp.pth"), "--run-dir", str(tmp_path / "run"),
           "--lr-decay", "cosine", "--time-limit", "1000"]  # a decaying lr, set from the main rank's clock
    env = _cli_env()
    env["OMP_NUM_THREADS"] = "1"
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, [line for line in r.stderr.splitlines() if "error" in line.lower()][:5]
    assert "ranks in sync: yes" in r.stdout + r.stderr
    # rank 0 alone wrote: one log line per step, one final model
    lines = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3]
    lrs = [json.loads(line)["lr"] for line in lines]
    assert lrs[0] == 1e-3 and lrs[0] > lrs[1] > lrs[2] > 0
    assert torch.load(tmp_path / "ddp.pth", weights_only=True)["meta"]["steps"] == 3


def test_stopwatch_leaves_out_what_it_skips():
    from fst.heldout import Stopwatch

    clock = Stopwatch(5.0)
    time.sleep(0.05)
    assert 5.04 < clock.lap() < 5.5
    time.sleep(0.3)  # an evaluation
    clock.skip()
    assert clock.lap() - 5.04 < 0.25


def _held_out_records(run: Path) -> list[dict]:
    return [r for r in map(json.loads, (run / "log.jsonl").read_text().splitlines()) if "held_out" in r]


def test_eval_every_logs_fst_evaluates_figures_against_training_time(tmp_path, photo_dir):
    """--eval-every: the held-out figures at step 0, as the training clock passes each multiple and
    at the end (the last one is `fst evaluate`'s of the final model); --time-limit stops the run,
    and a resumed run continues the same clock."""
    from fst.evaluate import evaluate

    cfg = tiny_config(tmp_path, photo_dir, steps=10**6, checkpoint_every=0, eval_every=0.3, eval_size=40, time_limit=1.0)
    path = train(cfg, log=lambda *a: None)
    meta = torch.load(path, weights_only=True)["meta"]
    records = _held_out_records(tmp_path / "run")
    assert records[0]["step"] == 0 and records[0]["train_seconds"] == 0
    assert records[-1]["step"] == meta["steps"] and 1.0 <= meta["train_seconds"] < 10
    assert 3 <= len(records) <= 5  # 0, past 0.3, 0.6, 0.9 (the last may be the end too), the end
    assert all(b["step"] > a["step"] and b["train_seconds"] > a["train_seconds"] for a, b in zip(records, records[1:]))
    held = [str(p) for p in photo_dir.rglob("*.jpg") if p.name in meta["held_out"]]
    assert len(held) == 1 and [p["photo"] for p in records[-1]["held_out"]["photos"]] == meta["held_out"]
    report = evaluate(path, held, size=40)
    for key in ("mean_style_ratio", "mean_content"):
        assert records[-1]["held_out"][key] == pytest.approx(report[key], rel=1e-4), key
    assert all(math.isfinite(r["held_out"]["mean_style_ratio"]) and r["eval_seconds"] > 0 for r in records)
    cfg.time_limit = 1.6
    resumed = train(cfg, resume=str(tmp_path / "run" / "checkpoint.pth"),
                    log=lambda *a: None)
    more = _held_out_records(tmp_path / "run")[len(records):]
    assert more and more[0]["step"] > records[-1]["step"] and more[0]["train_seconds"] > 1.0
    assert torch.load(resumed, weights_only=True)["meta"]["train_seconds"] >= 1.6


def test_eval_every_without_held_out_photos_is_one_line_and_exit_2(tmp_path, photo_dir):
    """8 photos: none held out (more than 8 hold 4 out), so nothing to evaluate on."""
    cmd = [sys.executable, "-m", "fst", "train", "--style", str(FIXTURES / "starry_night.jpg"), "--data", str(photo_dir),
           "--image-size", "32", "--style-size", "64", "--steps", "2", "--channels", "4", "--workers", "0",
           "--eval-every", "0.5", "--eval-size", "own", "--time-limit", "1", "--run-dir", str(tmp_path / "run")]
    r = subprocess.run(cmd, capture_output=True, text=True, env=_cli_env(), timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fst: error: --eval-every: no photos are held out"), r.stderr[-500:]
