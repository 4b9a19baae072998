"""What a new user stumbles on (issue 16 §4), each through the real `fst` command line: wrong file
kinds, options that were silently ignored, nonsense that was accepted, resuming, previews,
folders, interrupted work and pipes. Every error is one line `fst: error: ...` and exit 2."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import FIXTURES, PHOTOS, REPO, STYLE, run_fst

SHIPPED_ONNX = REPO / "export" / "starry_night.onnx"
SHIPPED_PTH = REPO / "checkpoints" / "starry_night.pth"
TINY = ["--image-size", "32", "--style-size", "64", "--channels", "4", "--res-blocks", "1", "--batch-size", "2",
        "--workers", "0"]


def one_line_error(code: int, stderr: str, *fragments: str) -> None:
    assert code == 2, stderr[-800:]
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fst: error:"), stderr[-800:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def six_photos(tmp_path_factory) -> Path:
    """Six small photos: too few to hold any out for previews (more than 8 are needed)."""
    root = tmp_path_factory.mktemp("six")
    for i in range(6):
        Image.open(FIXTURES / PHOTOS[i % 3]).convert("RGB").resize((80 + i, 64)).save(root / f"p{i}.jpg")
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory, six_photos) -> dict:
    """`fst train` with its defaults for places, run in an empty folder: 2 steps."""
    cwd = tmp_path_factory.mktemp("cwd")
    code, out, err = run_fst("train", "--style", FIXTURES / STYLE, "--data", six_photos, "--steps", "2",
                             "--checkpoint-every", "1", *TINY, cwd=cwd, timeout=300)
    assert code == 0, err[-1500:]
    run = cwd / "runs" / "starry_night"
    return {"cwd": cwd, "run": run, "model": run / "starry_night.pth", "out": out + err}


def test_train_writes_under_runs_not_into_the_shipped_checkpoints(trained):
    assert trained["model"].is_file()
    assert sorted(p.name for p in trained["cwd"].iterdir()) == ["runs"]  # nothing else, no checkpoints/
    assert f"final model {Path('runs') / 'starry_night' / 'starry_night.pth'}" in trained["out"]


def test_few_photos_still_give_previews_and_say_so(trained):
    assert "only 6 photos: none held out; the previews show 4 training photos" in trained["out"]
    for name in ("preview_000001.png", "preview_000002.png", "preview_final.png"):
        grid = Image.open(trained["run"] / name)
        # photo | stylized side by side (2 x 32 px), one row per photo p0..p3 (80+i x 64 at 32 px long), 4 px apart
        assert grid.size == (64, sum(round(64 * 32 / (80 + i)) + 4 for i in range(4)))
    assert torch.load(trained["model"], weights_only=True)["meta"]["held_out"] == []


def test_readme_resume_example_continues_without_overwrite(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained["run"], run)
    before = torch.load(run / "starry_night.pth", weights_only=True)["meta"]
    code, out, err = run_fst("train", "--resume", run / "checkpoint.pth", "--steps", "3", cwd=trained["cwd"], timeout=300)
    assert code == 0, err[-1500:]
    assert "resumed at step 2" in out + err
    # the checkpoint's own output (in the original run folder) is this run's: replaced, no --overwrite
    after = torch.load(trained["model"], weights_only=True)["meta"]
    assert after["steps"] == 3 and after["run_id"] == before["run_id"]
    # a final model of another run is never replaced
    other = tmp_path / "other.pth"
    torch.save({"model": {}, "meta": {"run_id": "someone-else"}}, other)
    code, _, err = run_fst("train", "--resume", run / "checkpoint.pth", "--steps", "4", "--output", other, cwd=trained["cwd"])
    one_line_error(code, err, "already exists")


def test_resume_refuses_settings_it_would_ignore(trained):
    ckpt = trained["run"] / "checkpoint.pth"
    code, _, err = run_fst("train", "--resume", ckpt, "--lr", "0.01", "--style", FIXTURES / PHOTOS[0], "--image-size", "64")
    one_line_error(code, err, "--resume continues a run with the checkpoint's own settings", "Drop --image-size, --lr, --style",
                   "--init")
    code, _, err = run_fst("train", "--resume", ckpt, "--steps", "1")
    one_line_error(code, err, "the checkpoint is at step", "--steps 1 is not beyond it")


def test_train_without_a_style(tmp_path, six_photos):
    code, _, err = run_fst("train", "--data", six_photos, cwd=tmp_path)
    one_line_error(code, err, "give --style IMAGE", "--resume")


def test_train_output_must_be_a_pth(tmp_path, six_photos):
    code, _, err = run_fst("train", "--style", FIXTURES / STYLE, "--data", six_photos, "--output", tmp_path / "out.onnx",
                           "--steps", "1", *TINY, cwd=tmp_path)
    one_line_error(code, err, "writes a PyTorch .pth model", "fst export")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option, value, fragment", [
    ("--res-blocks", "-1", "expected 0 or more"),
    ("--style-weight", "-5", "expected 0 or more"),
    ("--tv-weight", "-1e-3", "expected 0 or more"),
    ("--content-weight", "nan", "expected 0 or more"),
    ("--style-layers", "relu1_2:-1", "WEIGHT >= 0"),
])
def test_nonsense_numbers_are_refused(tmp_path, six_photos, option, value, fragment):
    code, _, err = run_fst("train", "--style", FIXTURES / STYLE, "--data", six_photos, "--steps", "1", *TINY,
                           f"{option}={value}", cwd=tmp_path)
    one_line_error(code, err, option, fragment)
    assert list(tmp_path.iterdir()) == []


def test_onnx_where_a_pth_is_needed(tmp_path, six_photos):
    code, _, err = run_fst("export", SHIPPED_ONNX, "-o", tmp_path / "x.onnx")
    one_line_error(code, err, "an ONNX file; a .pth is needed")
    code, _, err = run_fst("train", "--style", FIXTURES / STYLE, "--data", six_photos, "--steps", "1", *TINY,
                           "--init", SHIPPED_ONNX, cwd=tmp_path)
    one_line_error(code, err, "an ONNX file; a .pth is needed")
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "runs").exists()


def test_int8_with_an_empty_calibration_folder_writes_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = run_fst("export", SHIPPED_PTH, "-o", tmp_path / "m.onnx", "--int8", "--calibration", tmp_path / "empty")
    one_line_error(code, err, "no photos for calibration")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_vgg_weights_that_do_not_fit_say_why(tmp_path):
    wrong = tmp_path / "wrong.pth"
    torch.save({"0.weight": torch.zeros(1)}, wrong)
    code, _, err = run_fst("optimize", FIXTURES / PHOTOS[0], "--style", FIXTURES / STYLE, "-o", tmp_path / "o.png",
                           "--vgg-weights", wrong, "--iterations", "1")
    one_line_error(code, err, "do not fit", "25 of 26 tensors missing", "0.weight is (1,), not (64, 3, 3, 3)")
    assert not err.strip().endswith(":")


def test_model_given_as_a_folder(tmp_path):
    code, _, err = run_fst("stylize", FIXTURES / PHOTOS[0], "-m", FIXTURES, "-o", tmp_path / "o.png")
    one_line_error(code, err, "is a folder", "shipped style name, a .onnx or a .pth")


def test_format_with_a_file_output(tmp_path):
    code, _, err = run_fst("stylize", FIXTURES / PHOTOS[0], "-o", tmp_path / "o.png", "--format", "jpg")
    one_line_error(code, err, "--format jpg with the file")
    code, _, err = run_fst("stylize", FIXTURES / PHOTOS[0], "-o", tmp_path / "o.jpg", "--format", "jpg", "--max-size", "64")
    assert code == 0, err
    assert Image.open(tmp_path / "o.jpg").format == "JPEG"


def test_devices_the_onnx_backend_cannot_use(tmp_path):
    import onnxruntime

    code, _, err = run_fst("stylize", FIXTURES / PHOTOS[0], "-o", tmp_path / "o.png", "--device", "gpu")
    one_line_error(code, err, "'gpu' is not a device")
    code, _, err = run_fst("stylize", FIXTURES / PHOTOS[0], "-o", tmp_path / "o.png", "--device", "mps")
    one_line_error(code, err, "--device mps", "--backend torch")
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        code, _, err = run_fst("stylize", FIXTURES / PHOTOS[0], "-o", tmp_path / "o.png", "--device", "cuda")
        one_line_error(code, err, "no CUDA provider")
    assert not (tmp_path / "o.png").exists()


def test_evaluate_takes_the_painting_the_model_records(trained):
    code, out, err = run_fst("evaluate", trained["model"], "--photos", FIXTURES / PHOTOS[0], "--image-size", "64", "--json")
    assert code == 0, err[-1500:]
    (report,) = json.loads(out)
    assert report["painting"] == str(FIXTURES / STYLE)
    assert report["photos"][0]["style_ratio"] > 0


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_folder_outputs_keep_the_tree_and_skip_existing(tmp_path):
    src = tmp_path / "in"
    for sub in ("a", "b/c"):
        (src / sub).mkdir(parents=True)
        Image.open(FIXTURES / PHOTOS[1]).resize((48, 40)).save(src / sub / "x.jpg")
    Image.open(FIXTURES / PHOTOS[2]).resize((48, 40)).save(src / "x.png")
    Image.open(FIXTURES / PHOTOS[2]).resize((48, 40)).save(src / "x.jpg")
    out = tmp_path / "out"
    code, _, err = run_fst("stylize", src, "-o", out)
    assert code == 0, err
    assert _tree(out) == ["a/x.png", "b/c/x.png", "x_jpg.png", "x_png.png"]
    # an interrupted run: one output missing; the others are left exactly as they are
    (out / "b" / "c" / "x.png").unlink()
    stamps = {p: (out / p).stat().st_mtime_ns for p in _tree(out)}
    code, _, err = run_fst("stylize", src, "-o", out)
    one_line_error(code, err, "already exists", "--overwrite")
    code, _, err = run_fst("stylize", src, "-o", out, "--skip-existing")
    assert code == 0, err
    assert "skipping 3 file(s) whose output exists" in err
    assert _tree(out) == ["a/x.png", "b/c/x.png", "x_jpg.png", "x_png.png"]
    assert all((out / p).stat().st_mtime_ns == t for p, t in stamps.items())
    code, _, err = run_fst("stylize", src, "-o", out, "--skip-existing", "--overwrite")
    one_line_error(code, err, "contradict")


def test_ctrl_c_in_optimize_saves_the_best_image_so_far(tmp_path):
    out = tmp_path / "o.png"
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "fst", "optimize", str(FIXTURES / PHOTOS[0]), "--style", str(FIXTURES / STYLE),
                             "-o", str(out), "--image-size", "48", "--iterations", "100000", "--save-every", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    snapshot = tmp_path / "o_iter00003.png"
    deadline = time.time() + 120
    while time.time() < deadline and not snapshot.exists() and proc.poll() is None:
        time.sleep(0.1)
    assert snapshot.exists(), "no third evaluation within 120 s"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-800:]
    assert "saved the best image so far" in err and "Traceback" not in err
    report = json.loads(Image.open(out).text["fst"])
    assert report["interrupted"] is True and report["evaluations"] >= 3
    assert report["final"]["total"] < report["initial"]["total"]


def test_styles_into_a_closed_pipe():
    read, write = os.pipe()
    os.close(read)  # like `| head` that has already exited
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "fst", "styles"], stdout=write, stderr=subprocess.PIPE, text=True, env=env,
                          timeout=60)
    os.close(write)
    assert proc.returncode == 0 and proc.stderr == ""


def test_a_command_without_its_extra_names_the_extra(tmp_path):
    """As on the light install: torch is not importable."""
    code = ("import sys; sys.modules['torch'] = None; from fst.cli import main; "
            f"sys.exit(main(['train', '--style', {str(FIXTURES / STYLE)!r}, '--data', {str(FIXTURES)!r}]))")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    one_line_error(proc.returncode, proc.stderr, "fst train needs the train extra", "pip install 'fst[train]'")
