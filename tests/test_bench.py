"""`fst bench`: the command runs end to end in --quick mode and reports every figure it promises."""

from __future__ import annotations

import json
import math

import pytest

from fst.transformer import JOHNSON_CHANNELS, macs_per_pixel

QUICK_TIMEOUT = 300  # ~40 s on 2 busy cores


def _finite_positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _numbers(obj):
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return
    if isinstance(obj, (int, float)):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _numbers(v)


@pytest.fixture(scope="module")
def quick_report(fst_cli):
    code, out, err = fst_cli("bench", "--quick", "--json", timeout=QUICK_TIMEOUT)
    assert code == 0, err
    assert "Traceback" not in err
    report = json.loads(out)  # stdout is the JSON object alone; progress goes to stderr
    report["_stderr"] = err
    return report


def test_quick_json_has_every_section(quick_report):
    assert set(quick_report["sections"]) == {"peak", "stylize", "command", "train", "optimize"}
    assert quick_report["quick"] is True
    assert quick_report["device"] == "cpu"
    machine = quick_report["machine"]
    for key in ("cpu", "logical_cores", "torch", "onnxruntime", "python"):
        assert machine[key], key
    assert all(math.isfinite(v) for v in _numbers(quick_report))
    # one progress line per measurement on stderr
    assert quick_report["_stderr"].count("bench: stylize") >= 2 * 6


def test_quick_figures_are_positive_with_ratios(quick_report):
    sections = quick_report["sections"]
    peak = sections["peak"]
    assert _finite_positive(peak["gflops"]) and peak["n"] >= 1024
    for name in ("stylize", "command", "train", "optimize"):
        rows = sections[name]["rows"]
        assert rows, name
        sizes = sections[name]["sizes"]
        for size in sizes:
            at_size = [r for r in rows if r["size"] == size]
            assert sum(r["role"] == "plain" for r in at_size) == 1, (name, size)
            assert any(r["role"] == "fst" for r in at_size), (name, size)
        for row in rows:
            assert _finite_positive(row["seconds"]), row
            assert row["times"] and all(_finite_positive(t) for t in row["times"]), row
            assert _finite_positive(row["memory"]["peak_rss_mb"]), row
            if row["role"] == "fst":
                # every fst figure is reported as a speed-up over its plain counterpart
                assert _finite_positive(row["speedup_vs_plain"]), row
                plain = next(r for r in rows if r["size"] == row["size"] and r["role"] == "plain")
                assert row["speedup_vs_plain"] == pytest.approx(plain["seconds"] / row["seconds"])
    for row in sections["train"]["rows"]:
        assert _finite_positive(row["images_per_s"])
        assert row["images_per_s"] == pytest.approx(sections["train"]["batch"] / row["seconds"])
    assert sections["train"]["batch"] == 4


def test_quick_stylize_backends_flops_and_macs(quick_report):
    model = quick_report["model"]
    arch = model["architecture"]
    expected = macs_per_pixel(arch["channels"], arch["res_blocks"]) * 1e6
    stylize = quick_report["sections"]["stylize"]
    assert model["macs_per_megapixel"] == expected
    assert stylize["macs_per_megapixel"] == expected
    assert stylize["johnson_macs_per_megapixel"] == macs_per_pixel(JOHNSON_CHANNELS, arch["res_blocks"]) * 1e6
    peak = quick_report["sections"]["peak"]["gflops"]
    for size in stylize["sizes"]:
        names = {r["name"] for r in stylize["rows"] if r["size"] == size and r["role"] == "fst"}
        assert {"fst ONNX Runtime fp32", "fst ONNX Runtime fp16", "fst ONNX Runtime int8", "fst PyTorch eager"} <= names
        assert any(r["role"] == "reference" and "Johnson" in r["name"] for r in stylize["rows"] if r["size"] == size)
    for row in stylize["rows"]:
        macs = row["macs_per_megapixel"] / 1e6
        assert row["gflops"] == pytest.approx(2 * macs * row["size"] ** 2 / row["seconds"] / 1e9)
        assert row["percent_of_peak"] == pytest.approx(100 * row["gflops"] / peak)


def test_quick_whole_commands_run_in_fresh_processes(quick_report):
    command = quick_report["sections"]["command"]
    rows = {r["name"]: r for r in command["rows"]}
    assert set(rows) == {"fst stylize (ONNX Runtime, default)", "fst stylize --backend torch",
                         "plain: pytorch/examples-style eval command, eager fp32"}
    assert command["sizes"] == [128] and not command["skipped"]
    for row in rows.values():
        assert len(row["times"]) == quick_report["settings"]["repeats"]["command"] == 2
        # a fresh process: start-up and imports cost far more than a 128² network call
        assert min(row["times"]) > 0.05, row
        assert row["memory"]["peak_rss_scope"] == "child process"
    onnx, torch_row = rows["fst stylize (ONNX Runtime, default)"], rows["fst stylize --backend torch"]
    assert "--backend" not in onnx["command"] and onnx["command"].startswith("fst stylize")
    # the ONNX command never imports torch: it needs less memory than either torch command
    assert onnx["memory"]["peak_rss_mb"] < torch_row["memory"]["peak_rss_mb"]
    assert onnx["memory"]["peak_rss_mb"] < rows["plain: pytorch/examples-style eval command, eager fp32"]["memory"]["peak_rss_mb"]


def test_markdown_table_from_the_same_report(quick_report):
    from fst.bench import markdown

    text = markdown({k: v for k, v in quick_report.items() if not k.startswith("_")})
    assert text.startswith("# fst bench")
    assert quick_report["machine"]["cpu"] in text and quick_report["machine"]["torch"] in text
    assert "| size | implementation | ms | speed-up vs plain | GFLOP/s | % of peak |" in text
    assert "fst ONNX Runtime int8" in text and "images/s" in text and "s/evaluation" in text
    assert "| size | command | s (median) | min–max | speed-up vs plain | peak RSS MB |" in text
    columns = None  # every table row has its header's number of cells
    for line in text.splitlines():
        if line.startswith("| size |"):
            columns = line.count("|")
        elif line.startswith("|"):
            assert line.count("|") == columns, line
        else:
            columns = None


def test_only_stylize_limits_the_sections(fst_cli):
    code, out, err = fst_cli("bench", "--quick", "--json", "--only", "stylize", "--repeats", "1", timeout=QUICK_TIMEOUT)
    assert code == 0, err
    report = json.loads(out)
    # the stylize rows are a share of the peak, so the peak comes with them
    assert set(report["sections"]) == {"peak", "stylize"}
    assert all(len(r["times"]) == 1 for r in report["sections"]["stylize"]["rows"])
    assert "bench: train" not in err and "bench: optimize" not in err and "bench: command" not in err


@pytest.mark.parametrize(
    "args, words",
    [
        (["--device", "nonsense"], "--device nonsense"),
        (["--only", "stylize,bogus"], "--only"),
        (["--repeats", "0"], "--repeats"),
        (["--model", "no_such_style"], "no_such_style"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(fst_cli, args, words):
    code, out, err = fst_cli("bench", "--quick", *args, timeout=120)
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fst: error:") and words in lines[0], err
    assert out == ""
