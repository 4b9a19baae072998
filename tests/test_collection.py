"""Style collections: one network, each style its own norm parameters (conditional instance norm).

A collection of two tiny styles trains, resumes exactly, exports, and each style or mix gives the
output of its own parameters; --add-style leaves the shared weights bit-identical; stylize, styles
and evaluate pick styles by name.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fst import FstError
from fst.config import TrainConfig
from fst.losses import LossConfig, PerceptualLoss
from fst.mixing import style_weights
from fst.train import train
from fst.transformer import StyleNorm, TransformerNet, load_model, one_hot, one_style

from conftest import run_fst
from test_train import photo_dir, tiny_config  # noqa: F401 (the fixture)

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="module")
def two_styles(tmp_path_factory) -> list[str]:
    """Two style images with distinct names: the Starry Night fixture and a crop of another photo."""
    root = tmp_path_factory.mktemp("styles")
    night = root / "night.jpg"
    night.write_bytes((FIXTURES / "starry_night.jpg").read_bytes())
    wings = root / "wings.jpg"
    Image.open(FIXTURES / "butterfly.jpg").convert("RGB").crop((0, 0, 200, 160)).save(wings, quality=92)
    return [str(night), str(wings)]


def _random_norms(net: TransformerNet, seed: int = 0) -> TransformerNet:
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, StyleNorm):
            m.scale.data = 0.5 + torch.rand(m.scale.shape, generator=g)
            m.shift.data = torch.randn(m.shift.shape, generator=g) * 0.3
    return net.eval()


def single_network_with(net: TransformerNet, weights: torch.Tensor) -> TransformerNet:
    """A plain single-style network (InstanceNorm2d affine) with the collection's convolutions and
    the scale and shift rows mixed by `weights` (S,): what a style or a mix should compute."""
    single = TransformerNet(net.channels, net.res_blocks)
    state = {}
    for key, value in net.state_dict().items():
        if key.endswith(".scale"):
            state[key[: -len("scale")] + "weight"] = weights @ value
        elif key.endswith(".shift"):
            state[key[: -len("shift")] + "bias"] = weights @ value
        else:
            state[key] = value
    single.load_state_dict(state)
    return single.eval()


def test_each_style_and_mix_is_the_network_of_its_parameters():
    net = _random_norms(TransformerNet(4, 2, styles=3))
    x = torch.rand(2, 3, 29, 40)
    mix = torch.tensor([0.2, 0.0, 0.8])
    with torch.no_grad():
        for weights in (one_hot(0, 3), one_hot(2, 3), mix):
            expected = single_network_with(net, weights)(x)
            torch.testing.assert_close(net(x, weights), expected, rtol=0, atol=2e-6)
        # per-image styles in one batch (training) == each image alone
        both = net(x, one_hot(torch.tensor([2, 0]), 3))
        torch.testing.assert_close(both[0], net(x[:1], one_hot(2, 3))[0], rtol=0, atol=2e-6)
        torch.testing.assert_close(both[1], net(x[1:], one_hot(0, 3))[0], rtol=0, atol=2e-6)
        assert (net(x, one_hot(0, 3)) - net(x, one_hot(1, 3))).abs().max() > 0.01  # the styles do differ
    with pytest.raises(FstError, match="collection"):
        net(x)


def test_separate_targets_are_each_style_alone(loss_network, two_styles):
    from fst.losses import load_style_image

    cfg = LossConfig()
    styles = [torch.from_numpy(load_style_image(p, 64, cfg))[None] for p in two_styles]
    both = PerceptualLoss(loss_network, styles, cfg, separate=True)
    x, c = torch.rand(3, 3, 48, 48), torch.rand(3, 3, 48, 48)
    index = torch.tensor([1, 0, 1])
    per_image = both.style_loss_per_image(x, style_index=index)
    for i, s in enumerate(index.tolist()):
        alone = PerceptualLoss(loss_network, [styles[s]], cfg).style_loss_per_image(x[i : i + 1])
        torch.testing.assert_close(per_image[i : i + 1], alone, rtol=1e-5, atol=0)
    assert float(both(x, c, style_index=index)["style"]) == pytest.approx(float(per_image.mean()), rel=1e-6)


def test_each_style_takes_its_own_style_weight(loss_network, two_styles):
    """style_betas: each image's style term is its own style's beta times the unit-beta term (and
    the terms of the other styles' images do not move)."""
    from fst.losses import load_style_image

    cfg = LossConfig(style_weight=1.0)
    styles = [torch.from_numpy(load_style_image(p, 64, cfg))[None] for p in two_styles]
    x, index = torch.rand(3, 3, 48, 48), torch.tensor([1, 0, 1])
    unit = PerceptualLoss(loss_network, styles, cfg, separate=True).style_loss_per_image(x, style_index=index)
    own = PerceptualLoss(loss_network, styles, cfg, separate=True, style_betas=[2.0, 7.0])
    torch.testing.assert_close(own.style_loss_per_image(x, style_index=index), unit * torch.tensor([7.0, 2.0, 7.0]),
                               rtol=1e-6, atol=0)
    with pytest.raises(ValueError, match="beta"):
        PerceptualLoss(loss_network, styles, cfg, style_betas=[2.0, 7.0])  # a blend has one beta


def test_style_weight_of_sets_a_collection_style_weight_and_is_recorded(tmp_path, photo_dir, two_styles):
    from fst.train import build_loss

    cfg = _collection(tmp_path, photo_dir, two_styles, steps=1, loss=LossConfig(style_weight=8.0, style_weight_of={"wings": 3.0}))
    criterion = build_loss(cfg, torch.device("cpu"))[0]
    assert criterion.style_betas.tolist() == [8.0, 3.0]  # night: --style-weight's; wings: its own
    out = train(cfg, log=lambda *a: None)
    assert torch.load(out, weights_only=True)["meta"]["config"]["loss"]["style_weight_of"] == {"wings": 3.0}


def test_style_weight_of_refuses_unknown_styles_and_single_style_runs(tmp_path, photo_dir, two_styles):
    common = ["--data", photo_dir, "--steps", "1", "--image-size", "32", "--run-dir", tmp_path / "r"]
    args = ["train", "--collection", "duo", "--style", two_styles[0], "--style", two_styles[1], *common]
    code, _, err = run_fst(*args, "--style-weight-of", "night=5,wing=3")
    assert code == 2 and "--style-weight-of wing: no such style in the collection (night, wings)" in err
    assert "Traceback" not in err
    code, _, err = run_fst("train", "--style", two_styles[0], *common, "--style-weight-of", "night=5")
    assert code == 2 and "a collection's styles only" in err and "Traceback" not in err
    for bad in ("night", "night=-1", "night=x", "=4"):
        code, _, err = run_fst(*args, "--style-weight-of", bad)
        assert code == 2 and "use STYLE=WEIGHT" in err and err.count("\n") == 1, (bad, err)
    assert not (tmp_path / "r").exists()  # nothing was started


def test_a_collection_trained_further_needs_its_styles_in_order(tmp_path, photo_dir, two_styles):
    base = train(_collection(tmp_path / "base", photo_dir, two_styles, steps=1), log=lambda *a: None)
    with pytest.raises(FstError, match="same --style images in that order"):
        train(_collection(tmp_path / "again", photo_dir, two_styles[::-1], steps=1, init=base), log=lambda *a: None)
    further = train(_collection(tmp_path / "on", photo_dir, two_styles, steps=2, init=base), log=lambda *a: None)
    assert torch.load(further, weights_only=True)["meta"]["style_names"] == ["night", "wings"]


def test_a_collection_refuses_two_styles_of_one_name_and_names_only_those(tmp_path, photo_dir, two_styles):
    again = tmp_path / "copy" / os.path.basename(two_styles[0])  # night.jpg from another folder
    again.parent.mkdir()
    shutil.copy(two_styles[0], again)
    with pytest.raises(FstError) as error:
        train(_collection(tmp_path / "r", photo_dir, [*two_styles, str(again)], steps=1), log=lambda *a: None)
    assert "share a name (night: " in str(error.value) and str(again) in str(error.value)
    assert "wings" not in str(error.value)  # the style whose name is its own is not listed


def _collection(tmp, photo_dir, styles, **over):
    return tiny_config(tmp, photo_dir, style=styles, collection=True, **{"name": "duo", **over})


def test_collection_trains_resumes_exactly_and_records_its_styles(tmp_path, photo_dir, two_styles):
    straight = train(_collection(tmp_path / "a", photo_dir, two_styles, steps=6), log=lambda *a: None)
    train(_collection(tmp_path / "b", photo_dir, two_styles, steps=3), log=lambda *a: None)
    resumed = train(_collection(tmp_path / "b", photo_dir, two_styles, steps=6),
                    resume=str(tmp_path / "b" / "run" / "checkpoint.pth"), log=lambda *a: None)
    a, b = (torch.load(p, weights_only=True) for p in (straight, resumed))
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    meta = a["meta"]
    assert meta["style_names"] == ["night", "wings"] and meta["architecture"]["styles"] == 2
    assert len(meta["style_sha256"]) == 2
    # every style was trained: each row of every norm layer moved from its start (scale 1, shift 0)
    for key, value in a["model"].items():
        if key.endswith(".shift"):
            assert (value.abs().amax(dim=1) > 0).all(), key
    preview = Image.open(tmp_path / "a" / "run" / "preview_final.png")
    assert preview.width == 3 * 32  # photo | night | wings (the held-out preview is 32 px wide)


def test_add_style_trains_only_its_own_parameters(tmp_path, photo_dir, two_styles):
    base = train(_collection(tmp_path / "base", photo_dir, two_styles[:1], steps=2, name="solo"), log=lambda *a: None)
    added = train(tiny_config(tmp_path / "add", photo_dir, style=two_styles[1:], add_style=True, init=base, steps=3,
                              name="solo2", channels=99), log=lambda *a: None)  # channels: the collection's, whatever given
    a, b = (torch.load(p, weights_only=True) for p in (base, added))
    assert b["meta"]["style_names"] == ["night", "wings"] and b["meta"]["architecture"]["styles"] == 2
    for key, value in a["model"].items():
        grown = b["model"][key]
        if key.endswith((".scale", ".shift")):
            assert torch.equal(grown[:1], value), key  # the old style: bit-identical
        else:
            assert torch.equal(grown, value), key  # the shared weights: bit-identical
    moved = [not torch.equal(b["model"][k][1], a["model"][k][0]) for k in a["model"] if k.endswith(".scale")]
    assert all(moved)  # the new style's own parameters were trained (it started as a copy of the nearest: row 0)
    # and its channel maps (the grown collection has them; the old style's are zero: its function is unchanged)
    maps = [k for k in b["model"] if k.endswith(".map")]
    arch = b["meta"]["architecture"]
    assert len(maps) == 2 * arch["res_blocks"] and arch["style_maps"] is True  # two norms a residual block
    assert all(not b["model"][k][0].any() and b["model"][k][1].any() for k in maps)


def test_add_style_without_maps_keeps_the_collection_without_them(tmp_path, photo_dir, two_styles):
    base = train(_collection(tmp_path / "base", photo_dir, two_styles[:1], steps=1, name="solo"), log=lambda *a: None)
    added = train(tiny_config(tmp_path / "add", photo_dir, style=two_styles[1:], add_style=True, init=base, steps=1,
                              name="solo2", style_maps=False), log=lambda *a: None)
    grown = torch.load(added, weights_only=True)
    assert "style_maps" not in grown["meta"]["architecture"] and not any(k.endswith(".map") for k in grown["model"])
    assert grown["meta"]["architecture"]["styles"] == 2
    code, _, err = run_fst("train", "--style", two_styles[1], "--data", photo_dir, "--no-style-maps", "--steps", "1",
                           "--run-dir", tmp_path / "x")
    assert code == 2 and "--no-style-maps goes with --add-style" in err and len(err.strip().splitlines()) == 1


def test_add_style_takes_its_own_default_learning_rate(tmp_path, photo_dir, two_styles):
    """fst train --add-style without --lr: TrainConfig.add_style_lr, recorded in the model."""
    base = train(_collection(tmp_path / "base", photo_dir, two_styles[:1], steps=1, name="solo"), log=lambda *a: None)
    code, _, err = run_fst("train", "--add-style", two_styles[1], "--init", base, "--data", photo_dir, "--image-size", "32",
                           "--steps", "1", "--workers", "0", "--checkpoint-every", "0", "--run-dir", tmp_path / "x",
                           "--output", tmp_path / "grown.pth")
    assert code == 0, err[-2000:]
    config = torch.load(tmp_path / "grown.pth", weights_only=True)["meta"]["config"]
    assert config["lr"] == TrainConfig.add_style_lr != TrainConfig.lr


def test_add_style_eval_every_logs_the_new_styles_figures(tmp_path, photo_dir, two_styles):
    """--eval-every with --add-style: the log's last held-out figures are fst evaluate's of the new
    style of the final collection (not of another row), and differ from the first style's."""
    from fst.evaluate import evaluate

    base = train(_collection(tmp_path / "base", photo_dir, two_styles[:1], steps=2, name="solo"), log=lambda *a: None)
    added = train(tiny_config(tmp_path / "add", photo_dir, style=two_styles[1:], add_style=True, init=base, steps=3,
                              name="solo2", eval_every=1e3, eval_size=40, lr=0.05),  # lr: 3 steps move the new row
                  log=lambda *a: None)
    with open(tmp_path / "add" / "run" / "log.jsonl") as f:
        records = [r for r in map(json.loads, f) if "held_out" in r]
    assert [r["step"] for r in records] == [0, 3]  # the start and the end
    held = [str(p) for p in photo_dir.rglob("*.jpg") if p.name in torch.load(added, weights_only=True)["meta"]["held_out"]]
    new, old = (evaluate(added, held, two_styles[1], size=40, style=name) for name in ("wings", "night"))
    assert records[-1]["held_out"]["mean_style_ratio"] == pytest.approx(new["mean_style_ratio"], rel=1e-4)
    assert records[-1]["held_out"]["mean_content"] == pytest.approx(new["mean_content"], rel=1e-4)
    assert abs(old["mean_style_ratio"] / new["mean_style_ratio"] - 1) > 1e-3  # the rows give other figures


def test_add_style_refuses_a_single_style_network(tmp_path, photo_dir, two_styles):
    single = train(tiny_config(tmp_path / "s", photo_dir, steps=1), log=lambda *a: None)
    with pytest.raises(FstError, match="single-style network"):
        train(tiny_config(tmp_path / "x", photo_dir, style=two_styles[:1], add_style=True, init=single), log=lambda *a: None)


def test_add_style_starts_the_new_row_from_the_style_named(tmp_path, photo_dir, two_styles):
    """--add-style with --init COLLECTION:STYLE: the new style's row starts as a copy of that style's
    (lr 0 keeps the start), whichever is nearest."""
    duo = train(_collection(tmp_path / "d", photo_dir, two_styles, steps=2), log=lambda *a: None)
    third = tmp_path / "kitten.jpg"
    third.write_bytes((FIXTURES / "kitten.jpg").read_bytes())
    for named in ("night", "wings"):
        grown = train(tiny_config(tmp_path / named, photo_dir, style=[str(third)], add_style=True, init=duo,
                                  init_style=named, lr=0.0, steps=1, name="trio"), log=lambda *a: None)
        state = torch.load(grown, weights_only=True)["model"]
        row = ["night", "wings"].index(named)
        for key, value in state.items():
            if key.endswith((".scale", ".shift")):
                assert value.shape[0] == 3 and torch.equal(value[2], value[row]), (named, key)


def test_add_style_without_init_is_one_line(tmp_path, photo_dir, two_styles):
    """--init's default (auto) is no collection to add to: --add-style still asks for one."""
    code, _, err = run_fst("train", "--add-style", two_styles[1], "--data", photo_dir, "--image-size", "32",
                           "--steps", "1", "--workers", "0", "--run-dir", tmp_path / "x")
    assert code == 2 and "needs --init COLLECTION.pth" in err and len(err.strip().splitlines()) == 1


def test_add_style_of_a_name_the_collection_holds_trains_that_style_alone(tmp_path, photo_dir, two_styles):
    duo = train(_collection(tmp_path / "d", photo_dir, two_styles, steps=1), log=lambda *a: None)
    again = train(tiny_config(tmp_path / "y", photo_dir, style=two_styles[:1], add_style=True, init=duo, steps=2,
                              name="duo2"), log=lambda *a: None)
    a, b = (torch.load(p, weights_only=True) for p in (duo, again))
    assert b["meta"]["style_names"] == ["night", "wings"]  # no row added
    for key, value in a["model"].items():
        if key.endswith((".scale", ".shift")):
            assert torch.equal(b["model"][key][1], value[1]), key  # wings: bit-identical
            assert not torch.equal(b["model"][key][0], value[0]), key  # night: trained further
        else:
            assert torch.equal(b["model"][key], value), key
    # resumed, it goes on training that style (not the collection's last row) and ends where the
    # uninterrupted run of 2 steps did
    train(tiny_config(tmp_path / "z", photo_dir, style=two_styles[:1], add_style=True, init=duo, steps=1, name="duo2"),
          log=lambda *a: None)
    resumed = train(tiny_config(tmp_path / "z", photo_dir, style=[], steps=2), resume=str(tmp_path / "z" / "run" / "checkpoint.pth"),
                    log=lambda *a: None)
    c = torch.load(resumed, weights_only=True)
    assert all(torch.equal(c["model"][k], b["model"][k]) for k in b["model"]), "the resumed run trained another row"


def test_one_style_is_the_collection_with_that_style():
    net = _random_norms(TransformerNet(4, 2, styles=3), seed=1)
    x = torch.rand(2, 3, 30, 27)
    with torch.no_grad():
        for i in range(3):
            torch.testing.assert_close(one_style(net, i).eval()(x), net(x, one_hot(i, 3)), rtol=0, atol=2e-6)


def _with_a_blank_row(model: str, row: int, out: Path) -> str:
    """The collection with style `row` made useless: its last norm layer's shift of 1000 saturates the
    output conv, so every output is one flat colour of 0s and 1s, far from any painting's texture."""
    state = torch.load(model, weights_only=True)
    last = [k for k in state["model"] if k.endswith(".shift")][-1]
    state["model"][last][row] = 1e3
    torch.save(state, out)
    return str(out)


def test_a_single_style_run_from_a_collection_starts_from_its_nearest_or_named_style(tmp_path, photo_dir, two_styles):
    """--init COLLECTION: the run's network starts as the collection's convolutions with one style's
    norm parameters: the nearest to the painting by the style term (night's row blanked, so wings'),
    or the one named (--init FILE:STYLE). lr 0 keeps the start as the final model."""
    duo = train(_collection(tmp_path / "d", photo_dir, two_styles, steps=2), log=lambda *a: None)
    blanked = _with_a_blank_row(duo, 0, tmp_path / "blanked.pth")
    collection = load_model(blanked)[0]
    lines = []
    for init_style, expected in ((None, 1), ("night", 0)):
        model = train(tiny_config(tmp_path / str(init_style), photo_dir, style=two_styles[:1], init=blanked,
                                  init_style=init_style, lr=0.0, steps=1), log=lines.append)
        state = torch.load(model, weights_only=True)
        assert "styles" not in state["meta"]["architecture"] and state["meta"]["init_style"] == init_style
        single = one_style(collection, expected).state_dict()
        assert state["model"].keys() == single.keys()
        assert all(torch.equal(state["model"][k], single[k]) for k in single), init_style
    assert any("nearest to the new painting: wings" in line for line in lines)
    code, _, err = run_fst("train", "--style", two_styles[0], "--data", photo_dir, "--image-size", "32", "--channels", "4",
                           "--res-blocks", "1", "--style-size", "64", "--steps", "1", "--workers", "0", "--run-dir", tmp_path / "x",
                           "--init", f"{blanked}:sunflowers")
    assert code == 2 and "no such style" in err and "night, wings" in err and len(err.strip().splitlines()) == 1


def test_fst_train_starts_from_the_shipped_collection_by_default(tmp_path, photo_dir):
    """--init auto (the default): a one-style run of the shipped collection's width starts from it,
    at its style nearest the painting (named in the log; lr 0 keeps the start); --init none, or
    another width, starts from fresh weights."""
    classics = FIXTURES.parent.parent / "checkpoints" / "classics.pth"
    collection, meta = load_model(str(classics))
    runs = {}
    for name, over in (("auto", {}), ("none", {"init": "none"}), ("narrow", {"channels": 8})):
        lines = []
        settings = {"channels": 16, "res_blocks": 5, "lr": 0.0, "steps": 1, **over}
        model = train(tiny_config(tmp_path / name, photo_dir, **settings), log=lines.append)
        runs[name] = (torch.load(model, weights_only=True), "\n".join(map(str, lines)))
    state, log = runs["auto"]
    assert state["meta"]["init"] == str(classics) and "--init auto: the classics collection" in log
    nearest = re.search(r"nearest to the new painting: (\w+)", log)[1]
    single = one_style(collection, meta["style_names"].index(nearest)).state_dict()
    assert all(torch.equal(state["model"][k], single[k]) for k in single)
    for name in ("none", "narrow"):
        state, log = runs[name]
        assert state["meta"]["init"] is None and "nearest" not in log, name
    assert not torch.equal(runs["none"][0]["model"]["encoder.0.0.1.weight"], single["encoder.0.0.1.weight"])
    assert "fresh weights (the classics collection is 16 wide" in runs["narrow"][1]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, photo_dir, two_styles):
    """A trained two-style collection and its ONNX file (export verifies a pure style and a mix)."""
    tmp = tmp_path_factory.mktemp("collection")
    # ema 0: the last step's weights, whose styles 4 steps part (an average still lags near the start)
    model = train(_collection(tmp, photo_dir, two_styles, steps=4, channels=8, ema=0.0), log=lambda *a: None)
    onnx_path = tmp / "duo.onnx"
    code, out, err = run_fst("export", model, "-o", onnx_path)
    assert code == 0, err
    assert "style weights [0.333, 0.667]" in out  # the mix was checked, not only the styles
    return Path(model), onnx_path


def test_onnx_collection_picks_and_mixes_like_the_parameters(exported):
    import onnxruntime as ort

    model, onnx_path = exported
    net, _ = load_model(str(model))
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["fst.style_names"]) == ["night", "wings"] and "style_weights" in meta["fst.convention"]
    x = np.random.default_rng(0).random((1, 3, 45, 61), dtype=np.float32)
    for weights in ([1, 0], [0, 1], [0.25, 0.75]):
        w = np.array(weights, np.float32)
        ours = session.run(None, {"input": x * 255, "style_weights": w})[0] / 255
        with torch.no_grad():
            expected = single_network_with(net, torch.from_numpy(w))(torch.from_numpy(x)).numpy()
        assert np.abs(ours - expected).max() < 1e-3, weights  # float rounding through the rearranged tail


def test_stylize_by_style_name_and_mix(exported, tmp_path):
    from fst.stylize import OnnxStylizer

    _, onnx_path = exported
    photo = FIXTURES / "kitten.jpg"
    outs = {}
    for label, args in {"wings": [f"{onnx_path}:wings"], "mix": [str(onnx_path), "--mix", "night=1,wings=3"],
                        "first": [str(onnx_path)]}.items():
        dst = tmp_path / f"{label}.png"
        code, out, err = run_fst("stylize", photo, "-m", *args, "-o", dst, "--max-size", "96")
        assert code == 0, err
        outs[label] = np.asarray(Image.open(dst), np.float32)
    stylizer = OnnxStylizer(str(onnx_path))
    assert stylizer.name == "night"  # no choice: the first style
    from fst.images import load_image

    rgb = load_image(photo, max_side=96).rgb
    expected = {label: stylizer(rgb, np.array(w, np.float32)).transpose(1, 2, 0)
                for label, w in (("mix", [0.25, 0.75]), ("wings", [0, 1]), ("first", [1, 0]))}
    for label, out in outs.items():  # each file is its weights' output, to 8-bit rounding
        assert np.abs(out / 255 - expected[label]).max() <= 0.5 / 255 + 1e-6, label
    assert np.abs(expected["wings"] - expected["first"]).max() > 2 / 255  # and the styles differ beyond rounding
    # mistakes: one line each, exit 2
    for args, message in ((["-m", f"{onnx_path}:nope"], "has no style 'nope' (its styles: night, wings)"),
                          (["-m", onnx_path, "--style", "night", "--mix", "night=1"], "give one of them"),
                          (["-m", onnx_path, "--mix", "night=-1"], "bad part"),
                          (["-m", "starry_night", "--style", "night"], "holds one style")):
        code, _, err = run_fst("stylize", photo, *args, "-o", tmp_path / "x.png")
        assert code == 2 and message in err and err.count("\n") == 1, err


def test_styles_lists_a_collections_styles(exported):
    model, onnx_path = exported
    code, out, err = run_fst("styles", onnx_path, model, "--json")
    assert code == 0, err
    assert [row["styles"] for row in json.loads(out)] == [["night", "wings"], ["night", "wings"]]


def test_style_weights_are_normalised_and_labelled():
    names = ["a", "b", "c"]
    w, label = style_weights(names, mix="a=1,c=3")
    assert w.tolist() == [0.25, 0.0, 0.75] and label == "a25+c75"
    w, label = style_weights(names, style="b")
    assert w.tolist() == [0.0, 1.0, 0.0] and label == "b"
    assert style_weights([], None, None) == (None, "")
    for bad in ("a=0", "a", "a=nan", "a=inf", "d=1"):
        with pytest.raises(FstError):
            style_weights(names, mix=bad)
