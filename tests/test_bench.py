"""`fst bench`: the command runs end to end in --quick mode, every baseline computes fst's loss,
and its Markdown has the structure of README's Performance section (which is pasted from it)."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fst.runtime import cpu_supports_bf16

REPO = Path(__file__).resolve().parent.parent

QUICK_TIMEOUT = 600  # ~1 minute on 2 idle cores, several when the machine is shared
BEGIN, END = "<!-- fst bench --markdown: begin -->", "<!-- fst bench --markdown: end -->"


def _finite_positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def quick(fst_cli, tmp_path_factory):
    """One quick run: its Markdown on stdout, its report as JSON in a file."""
    path = tmp_path_factory.mktemp("bench") / "report.json"
    code, out, err = fst_cli("bench", "--quick", "--markdown", "--json", str(path), timeout=QUICK_TIMEOUT)
    assert code == 0, err
    assert "Traceback" not in err
    return {"markdown": out, "report": json.loads(path.read_text()), "stderr": err}


def test_every_section_and_the_machine(quick):
    report = quick["report"]
    assert list(report["sections"]) == ["peak", "stylize", "command", "train", "optimize"]
    assert report["quick"] is True and report["device"] == "cpu"
    machine = report["machine"]
    for key in ("cpu", "logical_cores", "torch", "onnxruntime", "python", "torch_cpu_capability"):
        assert machine[key], key
    assert ("AVX-512 bf16" in machine["isa"] or "AMX bf16" in machine["isa"]) == cpu_supports_bf16()
    assert quick["stderr"].count("bench: stylize") >= 2 * 6  # one progress line per measurement


def test_every_baseline_computes_fsts_loss(quick):
    sections = quick["report"]["sections"]
    checked = [r for name in ("train", "optimize") for r in sections[name]["rows"] if r["role"] == "baseline"]
    precisions = {"float32", "bfloat16"} if cpu_supports_bf16() else {"float32"}
    assert len(checked) == 2 * len(precisions) * len(sections["train"]["sizes"]) + len(sections["optimize"]["sizes"])
    for row in checked:
        check = row["check"]
        assert check["ok"] and check["relative_difference"] <= check["bound"], row["name"]
        # the bound is rounding's: far below the smallest loss term's share (TV, ~1e-2 of the total)
        assert check["bound"] < (1e-3 if row["precision"] == "float32" else 0.2)
        assert check["relative_difference"] == pytest.approx(
            abs(check["baseline_loss"] - check["fst_loss"]) / abs(check["fst_loss"]))
    for row in sections["stylize"]["rows"]:  # fst's float32 outputs equal PE's on the same network
        if row["precision"] == "float32" and "max_difference_255" in row:
            assert row["max_difference_255"] <= sections["stylize"]["output_tolerance_255"], row["name"]
    assert quick["report"]["checks_failed"] == []


def test_ratios_only_within_one_precision(quick):
    sections = quick["report"]["sections"]
    for name in ("stylize", "command", "train", "optimize"):
        rows = sections[name]["rows"]
        for row in rows:
            assert _finite_positive(row["seconds"]) and row["times"] and all(_finite_positive(t) for t in row["times"])
            assert _finite_positive(row["memory"]["peak_rss_mb"]), row
            ratios = {k: v for k, v in row.items() if k.startswith("speedup_vs_") and v is not None}
            if row["role"] != "fst" or row["precision"] != "float32" and name == "stylize":
                assert not ratios, row  # baselines, and fst's fp16 / int8 files, carry no ratio
                continue
            assert ratios, row
            for key, value in ratios.items():  # each against a baseline of the same size and precision
                others = [r for r in rows if r["size"] == row["size"] and r["role"] == "baseline"
                          and r["precision"] == row["precision"] and r["seconds"] / row["seconds"] == pytest.approx(value)]
                assert others, (row["name"], key)
    train = sections["train"]
    names = {r["name"] for r in train["rows"]}
    assert {"fst (float32)", "PE, fst's network (float32)", "PE, its network (float32)"} <= names
    assert ("fst (bfloat16)" in names) == cpu_supports_bf16()
    for row in train["rows"]:
        assert row["images_per_s"] == pytest.approx(train["batch"] / row["seconds"])
        assert row["gflops"] == pytest.approx(2 * row["macs"] / row["seconds"] / 1e9)
    assert train["batch"] == 4


def test_percent_of_peak_is_against_the_same_precisions_measured_peak(quick):
    sections = quick["report"]["sections"]
    peak = sections["peak"]
    for precision, gflops in peak["gflops"].items():
        assert gflops == max(p["gflops"] for p in peak["probes"] if p["precision"] == precision)
    for name in ("stylize", "train"):
        for row in sections[name]["rows"]:
            if row["precision"] in peak["gflops"]:
                assert row["percent_of_peak"] == pytest.approx(100 * row["gflops"] / peak["gflops"][row["precision"]])
            else:
                assert "percent_of_peak" not in row  # fp16 / int8 files: no peak of theirs was measured


def test_whole_commands_run_in_fresh_processes(quick):
    command = quick["report"]["sections"]["command"]
    rows = {r["name"]: r for r in command["rows"]}
    assert set(rows) == {"fst stylize (ONNX Runtime, default)", "fst stylize --backend torch",
                         "PE eval, fst's network (.pth)", "PE eval, its network (width 32)"}
    for row in rows.values():
        assert len(row["times"]) == quick["report"]["settings"]["repeats"]["command"] == 2
        assert min(row["times"]) > 0.05, row  # start-up and imports cost far more than a 128² network call
        assert row["memory"]["peak_rss_scope"] == "child process"
    onnx = rows["fst stylize (ONNX Runtime, default)"]
    # the ONNX command never imports torch: it needs less memory than any torch command
    assert all(onnx["memory"]["peak_rss_mb"] < r["memory"]["peak_rss_mb"] for n, r in rows.items() if r is not onnx)


def _structure(markdown: str) -> dict:
    """Titles, table headers, row labels (numbers as N, fst's bold dropped) and the header fields.
    bf16 rows are dropped where this CPU has no bf16 (README's has)."""
    titles, headers, labels, fields = [], [], [], []
    lines = markdown.splitlines()
    for line, following in zip(lines, lines[1:] + [""]):
        if line.startswith("#"):
            titles.append(re.sub(r"\d+", "N", line))
        elif line.startswith("| ") and following.startswith("|---"):
            headers.append(line)
        elif line.startswith("| "):
            label = re.sub(r"\d+", "N", line.split(" | ")[1].strip("*"))
            if cpu_supports_bf16() or "bfloat16" not in label:
                labels.append(label)
        elif line.startswith("**") and not line.startswith("**WARNING"):
            fields.append(line.split(":**")[0])
    return {"titles": titles, "headers": headers, "labels": labels, "fields": fields}


def test_readme_performance_is_fst_bench_markdown(quick):
    readme = (REPO / "README.md").read_text()
    assert readme.count(BEGIN) == 1 and readme.count(END) == 1
    pasted = readme.split(BEGIN)[1].split(END)[0]
    ours, theirs = _structure(quick["markdown"]), _structure(pasted)
    assert ours["titles"] == theirs["titles"]
    assert ours["headers"] == theirs["headers"]
    assert ours["fields"] == theirs["fields"] == ["**Machine", "**Software", "**Run", "**Model"]
    # quick mode times fewer sizes: the same labels, each once per size
    assert sorted(set(ours["labels"])) == sorted(set(theirs["labels"]))
    # README's run was the full one, and names no path of the machine it ran on
    assert "`fst bench --markdown`" in pasted and "--quick" not in pasted
    for text in (quick["markdown"], pasted):
        assert str(REPO) not in text and sys.prefix not in text and "/tmp/" not in text


def test_only_limits_the_sections(fst_cli):
    code, out, err = fst_cli("bench", "--quick", "--json", "--only", "stylize", "--repeats", "1", timeout=QUICK_TIMEOUT)
    assert code == 0, err
    report = json.loads(out)
    assert list(report["sections"]) == ["peak", "stylize"]  # % of peak needs the peak
    assert all(len(r["times"]) == 1 for r in report["sections"]["stylize"]["rows"])
    assert "bench: train" not in err and "bench: optimize" not in err and "bench: command" not in err


@pytest.mark.parametrize(
    "args, words",
    [
        (["--device", "nonsense"], "--device nonsense"),
        (["--only", "stylize,bogus"], "--only"),
        (["--repeats", "0"], "--repeats"),
        (["--model", "no_such_style"], "no_such_style"),
        (["--only", "train", "--vgg-weights", "/nonexistent/vgg.pth"], "/nonexistent/vgg.pth"),
        (["--only", "quality", "--photos", "/nonexistent/photos"], "/nonexistent/photos"),
        (["--only", "quality", "--photos", str(REPO / "tests" / "fixtures" / "unseen")], "would not hold out"),
        (["--only", "quality", "--model", str(REPO / "export" / "great_wave.onnx")], "needs the model's .pth"),
        (["--only", "quality", "--minutes", "0"], "--minutes"),
        (["--only", "quality", "--style-weight", "0"], "--style-weight"),
        (["--only", "quality", "--init", "great_wave"], "the target model itself"),
        (["--only", "quality", "--init", "classics"], "trained on the target's painting already"),
        (["--only", "quality", "--init", str(REPO / "export" / "starry_night.onnx")], "needs a .pth"),
        (["--only", "quality", "--add-style"], "--add-style: name the collection"),
        (["--only", "quality", "--add-style", "--init", "starry_night"], "a single-style network"),
        (["--only", "quality", "--init", "the_night_cafe"], "a style of the classics collection"),
        (["--only", "quality", "--lr", "0"], "--lr"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(fst_cli, args, words):
    code, out, err = fst_cli("bench", "--quick", *args, timeout=120)
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fst: error: ") and words in lines[0], err
    assert out == ""


def test_the_baselines_match_pytorch_examples_layout():
    """PE's TransformerNet has its parameter names and count (so its own state_dicts load), and its
    Vgg16 slices end where PE's do, at relu1_2, relu2_2, relu3_3, relu4_3."""
    from fst.bench.baselines import PE_SLICE_ENDS, TransformerNet
    from fst.vgg import LAYER_NAMES

    net = TransformerNet()
    names = set(net.state_dict())
    assert {"conv1.conv2d.weight", "in1.weight", "res5.conv2.conv2d.bias", "deconv1.conv2d.weight", "deconv3.conv2d.weight"} <= names
    assert sum(p.numel() for p in net.parameters()) == 1_679_235
    assert [LAYER_NAMES[i - 1] for i in PE_SLICE_ENDS] == ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]


def test_the_check_fails_for_a_baseline_that_computes_something_else(loss_network, style_path):
    """The bound is tight enough to catch a small change of the loss: PE with the TV weight off by
    10 % (TV is the smallest term) fails it; the same code with fst's weights passes."""
    import dataclasses

    import torch

    from fst.bench.baselines import PETraining, TransformerNet
    from fst.bench.check import agreement, loss_bound
    from fst.images import load_image
    from fst.losses import LossConfig, PerceptualLoss

    config = LossConfig()
    style = torch.from_numpy(load_image(style_path, long_side=64).rgb)[None]
    batch = torch.rand(2, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    y = torch.sigmoid(TransformerNet()(batch)).detach()
    fst_value = float(PerceptualLoss(loss_network, [style], config)(y, batch)["total"])
    bound = loss_bound("relu4_3", 2 * 128 * 24 * 24, "float32")
    for tv_weight, ok in ((config.tv_weight, True), (config.tv_weight * 1.1, False)):
        pe = PETraining(TransformerNet(), loss_network, style, dataclasses.replace(config, tv_weight=tv_weight), 2)
        with torch.no_grad():
            assert agreement(fst_value, float(pe.loss(y, batch)), bound)["ok"] is ok


@pytest.fixture(scope="module")
def quality(fst_cli, tmp_path_factory):
    """One quick run of the time-to-quality section: its Markdown and its report."""
    path = tmp_path_factory.mktemp("quality") / "report.json"
    code, out, err = fst_cli("bench", "--quick", "--only", "quality", "--markdown", "--json", str(path), timeout=QUICK_TIMEOUT)
    assert code == 0, err[-2000:]
    assert "Traceback" not in err
    return {"markdown": out, "report": json.loads(path.read_text())}


def test_quality_curves_of_both_sides(quality):
    """Each side: a point at the start and one per round of its training time (fewer only if it
    reached the target), training time and steps rising, finite figures; PE computes fst's loss."""
    report = quality["report"]
    assert list(report["sections"]) == ["quality"] and report["checks_failed"] == []
    result = report["sections"]["quality"]
    assert result["rounds"] == 2 and result["every_seconds"] == 2 and result["eval_size"] == 64 and result["held_out"] == 4
    rows = {r["name"]: r for r in result["rows"]}
    assert set(rows) == {"fst train", "PE, its network (float32)"}
    target = result["target"]
    for row in rows.values():
        curve = row["curve"]
        hits = [i for i, p in enumerate(curve) if p["style_ratio"] <= target["style_ratio"] and p["content"] <= target["content"]]
        assert len(curve) == (hits[0] + 1 if hits else result["rounds"] + 1), row["name"]
        assert curve[0]["step"] == 0 and curve[0]["minutes"] == 0
        assert all(b["minutes"] > a["minutes"] and b["step"] > a["step"] for a, b in zip(curve, curve[1:])), row["name"]
        assert all(_finite_positive(p[k]) for p in curve for k in ("style_ratio", "max_style_ratio", "content"))
        if not hits:  # it trained its whole budget: its clock passed the last round's limit
            assert curve[-1]["minutes"] * 60 >= result["rounds"] * result["every_seconds"]
            assert row["minutes_to_target"] is None
        else:
            assert row["minutes_to_target"] == curve[hits[0]]["minutes"]
    check = rows["PE, its network (float32)"]["check"]
    assert check["ok"] and check["relative_difference"] <= check["bound"] < 1e-3


def test_quality_from_another_styles_network(fst_cli, tmp_path):
    """--init starry_night: the fst side starts from that network, so its first point is
    starry_night's own figures against great_wave's painting (as fst evaluate gives them), and the
    row says where it started; PE's side is unchanged (from scratch)."""
    path = tmp_path / "report.json"
    code, out, err = fst_cli("bench", "--quick", "--only", "quality", "--init", "starry_night", "--json", str(path),
                             timeout=QUICK_TIMEOUT)
    assert code == 0, err[-2000:]
    rows = {r["name"]: r for r in json.loads(path.read_text())["sections"]["quality"]["rows"]}
    assert set(rows) == {"fst train --init starry_night.pth", "PE, its network (float32)"}
    start = rows["fst train --init starry_night.pth"]["curve"][0]
    from fst.evaluate import load_criterion, network_figures, photo_arrays
    from fst.stylize import load_stylizer

    held = sorted(str(p) for p in (REPO / "tests" / "fixtures" / "held_out").glob("*.jpg"))
    criterion, _ = load_criterion("great_wave", vgg_weights=os.environ.get("FST_VGG_WEIGHTS"))
    evaluated = network_figures(criterion, load_stylizer("starry_night"), photo_arrays(held, 64))
    assert start["step"] == 0
    # the bench evaluates the PyTorch network in training, this the shipped ONNX file of the same
    # weights: they differ by ~3e-3 of 255 (fst export's parity check), far below 1e-3 of a figure
    assert start["style_ratio"] == pytest.approx(evaluated["mean_style_ratio"], rel=1e-3)
    assert start["content"] == pytest.approx(evaluated["mean_content"], rel=1e-3)


def test_quality_from_a_collection_that_has_not_seen_the_painting(fst_cli, tmp_path):
    """--init a collection without The Scream, for the reference Scream network: the fst side starts
    from the collection's style nearest the painting (its log names it), so its first point is that
    style's own figures against The Scream (as fst evaluate gives them). --style-weight 6.5 trains
    both sides at 6.5 (the target was trained at 5): PE's loss check passes only if PE's loss has it."""
    reference = REPO / "checkpoints" / "reference"
    path = tmp_path / "report.json"
    code, out, err = fst_cli("bench", "--quick", "--only", "quality", "--model", str(reference / "the_scream.pth"),
                             "--init", str(reference / "classics10.pth"), "--style-weight", "6.5", "--json", str(path),
                             timeout=QUICK_TIMEOUT)
    assert code == 0, err[-2000:]
    nearest = re.search(r"nearest to the new painting: (\w+)", out + err)
    assert nearest, (out + err)[-2000:]
    result = json.loads(path.read_text())["sections"]["quality"]
    rows = {r["name"]: r for r in result["rows"]}
    start = rows["fst train --init classics10.pth"]["curve"][0]
    from fst.evaluate import load_criterion, network_figures, photo_arrays
    from fst.stylize import load_stylizer

    held = sorted(str(p) for p in (REPO / "tests" / "fixtures" / "held_out").glob("*.jpg"))
    criterion, _ = load_criterion(str(reference / "the_scream.pth"), vgg_weights=os.environ.get("FST_VGG_WEIGHTS"))
    stylizer = load_stylizer(f"{reference / 'classics10.pth'}:{nearest[1]}", backend="torch")
    evaluated = network_figures(criterion, stylizer, photo_arrays(held, 64))
    assert start["step"] == 0 and result["target"]["step"] == 2400 and result["shipped"] is False
    assert (result["style_weight"], result["target_style_weight"]) == (6.5, 5.0)
    assert rows["PE, its network (float32)"]["check"]["ok"]
    assert any("--style-weight 6.5 (the model's other loss weights" in n for n in json.loads(path.read_text())["notes"])
    assert start["style_ratio"] == pytest.approx(evaluated["mean_style_ratio"], rel=1e-4)
    assert start["content"] == pytest.approx(evaluated["mean_content"], rel=1e-4)


def test_quality_of_adding_the_painting_to_a_collection(fst_cli, tmp_path):
    """--add-style: the fst side adds The Scream to the collection without it, training the new
    style's norm parameters and channel maps alone at --lr, and its curve is the new style's: it starts at the
    nearest style's figures (the new row is a copy of it) and moves from there."""
    reference = REPO / "checkpoints" / "reference"
    path = tmp_path / "report.json"
    code, out, err = fst_cli("bench", "--quick", "--only", "quality", "--model", str(reference / "the_scream.pth"),
                             "--init", str(reference / "classics10.pth"), "--add-style", "--lr", "0.01",
                             "--json", str(path), timeout=QUICK_TIMEOUT)
    assert code == 0, err[-2000:]
    assert "its own norm parameters and channel maps alone are trained" in out + err
    report = json.loads(path.read_text())
    rows = {r["name"]: r for r in report["sections"]["quality"]["rows"]}
    curve = rows["fst train --add-style --init classics10.pth"]["curve"]
    assert any("--lr 0.01 " in n and "--add-style --init classics10.pth" in n for n in report["notes"])
    assert "--add-style" in report["command"] and "--lr 0.01" in report["command"]
    nearest = re.search(r"the new style starts from (\w+)'s parameters", out + err)[1]
    from fst.evaluate import load_criterion, network_figures, photo_arrays
    from fst.stylize import load_stylizer

    held = sorted(str(p) for p in (REPO / "tests" / "fixtures" / "held_out").glob("*.jpg"))
    criterion, _ = load_criterion(str(reference / "the_scream.pth"), vgg_weights=os.environ.get("FST_VGG_WEIGHTS"))
    evaluated = network_figures(criterion, load_stylizer(f"{reference / 'classics10.pth'}:{nearest}", backend="torch"),
                                photo_arrays(held, 64))
    assert curve[0]["step"] == 0 and curve[0]["style_ratio"] == pytest.approx(evaluated["mean_style_ratio"], rel=1e-4)
    assert curve[-1]["step"] > 0 and curve[-1]["style_ratio"] != pytest.approx(curve[0]["style_ratio"], rel=1e-4)


def test_quality_measures_the_full_trainings_time_and_each_sides_share_of_it(quality):
    """The yardstick of issue 14's quarter: the target's recorded steps times a step of its full
    training measured here, and each side's minutes (to the target, else its budget) over that."""
    result = quality["report"]["sections"]["quality"]
    full = result["full_training"]
    assert full["steps"] == result["target"]["step"] == 2000 and full["rounds"] == 3
    assert full["step_seconds"] > 0 and full["side_step_seconds"] > 0
    assert full["minutes"] == pytest.approx(full["steps"] * full["step_seconds"] / 60, rel=1e-9)
    for row in result["rows"]:
        spent = row["minutes_to_target"] if row["minutes_to_target"] is not None else row["budget_minutes"]
        assert row["share_of_full_training"] == pytest.approx(spent / full["minutes"], rel=1e-9), row["name"]
    assert f"| {full['minutes']:.1f} min here (2000 steps × {full['step_seconds']:.3f} s;" in quality["markdown"]


def test_the_side_network_timed_is_the_one_fst_train_trains():
    """loopstep times the fst side's step on the network fst train builds: --add-style grows the
    collection by a row and freezes every shared weight; --init from a collection gives one style's
    single network, all of it trained; no --init, fresh weights."""
    import torch

    from fst.bench.loopstep import _side_network
    from fst.config import TrainConfig

    classics10 = str(REPO / "checkpoints" / "reference" / "classics10.pth")
    added, optimizer, styles = _side_network(TrainConfig(style=["x.jpg"], init=classics10, add_style=True), torch.device("cpu"))
    shared = {id(p) for p in added.shared_parameters()}
    assert styles == 11 and added.style_maps and shared
    assert all(not p.requires_grad for p in added.shared_parameters())
    optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert optimized and not optimized & shared
    single, optimizer, styles = _side_network(TrainConfig(style=["x.jpg"], init=classics10), torch.device("cpu"))
    assert styles == 0 and single.styles == 0 and all(p.requires_grad for p in single.parameters())
    assert sum(p.numel() for group in optimizer.param_groups for p in group["params"]) == sum(p.numel() for p in single.parameters())
    fresh, _, styles = _side_network(TrainConfig(style=["x.jpg"], init=None), torch.device("cpu"))
    assert styles == 0 and not torch.equal(fresh.encoder[0][0][1].weight, single.encoder[0][0][1].weight)


def test_quality_target_is_fst_evaluates_figures_of_the_shipped_model(quality, fst_cli):
    target = quality["report"]["sections"]["quality"]["target"]
    code, out, err = fst_cli("evaluate", "great_wave", "--photos", str(REPO / "tests" / "fixtures" / "held_out"),
                             "--image-size", "64", "--json", timeout=QUICK_TIMEOUT)
    assert code == 0, err
    evaluated = json.loads(out)[0]
    assert target["style_ratio"] == pytest.approx(evaluated["mean_style_ratio"], rel=1e-6)
    assert target["max_style_ratio"] == pytest.approx(evaluated["max_style_ratio"], rel=1e-6)
    assert target["content"] == pytest.approx(evaluated["mean_content"], rel=1e-6)
    assert target["step"] == 2000


def test_quality_markdown_shows_the_target_and_both_curves(quality):
    markdown = quality["markdown"]
    assert "#### Time to quality: training time until great_wave's held-out figures" in markdown
    assert "#### Time to quality: held-out figures against training minutes" in markdown
    target = quality["report"]["sections"]["quality"]["target"]
    full = quality["report"]["sections"]["quality"]["full_training"]
    full_cell = f"{full['minutes']:.1f} min here (2000 steps × {full['step_seconds']:.3f} s; the fst side's step {full['side_step_seconds']:.3f} s)"
    assert (f"| — | great_wave (shipped, the target) | {full_cell} | 2000 | "
            f"{target['style_ratio']:.3f} ({target['max_style_ratio']:.3f}) |") in markdown
    assert markdown.count("| **fst train** |") == 1 + len(quality["report"]["sections"]["quality"]["rows"][0]["curve"])
    assert "/tmp/" not in markdown and str(REPO) not in markdown
    for row in quality["report"]["sections"]["quality"]["rows"]:  # a miss names the figures above the target's
        if row["minutes_to_target"] is None:
            shown, over = row["shown"], [k for k in ("style_ratio", "content") if row["shown"][k] > target[k]]
            assert over, row  # a row not reached has a figure above the target
            cell = ", ".join(f"{k.replace('_', ' ')} {shown[k]:.4f} > {target[k]:.4f}" for k in over)
            share = f"over {100 * row['share_of_full_training']:.1f} %"  # the budget's share: more than that
            assert f": {cell}) | {'**' + row['name'] + '**' if row['role'] == 'fst' else row['name']} | {share} |" in markdown


def test_networks_table_prices_each_network():
    """python -m fst.bench.networks: one row per WIDTHxBLOCKS with its GMAC/MP (the network's own
    count), the reference first at 1.00x; a malformed list is one line."""
    from fst.transformer import macs_per_pixel

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "fst.bench.networks", "--networks", "8x1,4x2", "--size", "64",
                        "--train-size", "32", "--repeats", "1"], capture_output=True, text=True, env=env, timeout=300,
                       cwd=REPO)
    assert r.returncode == 0, r.stderr[-500:]
    rows = [line for line in r.stdout.splitlines() if line.startswith("| width")]
    assert len(rows) == 2 and rows[0].startswith("| width 8, 1 blocks") and rows[1].startswith("| width 4, 2 blocks")
    assert f"| {macs_per_pixel(4, 2) / 1e3:.1f} |" in rows[1] and rows[0].count("(1.00×)") == 2
    for networks in ("wide", "0x5"):
        bad = subprocess.run([sys.executable, "-m", "fst.bench.networks", "--networks", networks], capture_output=True,
                             text=True, cwd=REPO)
        assert bad.returncode != 0 and "Traceback" not in bad.stderr and "WIDTHxBLOCKS" in bad.stderr, networks
