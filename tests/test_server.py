"""`fst serve` end to end: the real server in a subprocess on a free loopback port, the shipped
export/ models, and httpx as the client. Also the load generator, fst.loadtest."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

import httpx
import numpy as np
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from conftest import BOMB_SIZE, FIXTURES, REPO

KITTEN = FIXTURES / "kitten.jpg"  # 320 x 240
CASTLE = FIXTURES / "chenonceau_castle.jpg"  # 320 x 172
IMAGE = {"Content-Type": "image/jpeg"}  # a raw body must say it is an image
MAIN_MAX_BODY = 2_000_000
MAIN_MAX_SIZE = 400


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`python -m fst serve ARGS` on a free loopback port; waits until /healthz answers."""

    def __init__(self, *args: str, startup_timeout: float = 90.0):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile("w+", prefix="fst-serve-", suffix=".log", delete=False)
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fst", "serve", "--host", "127.0.0.1", "--port", str(self.port), *args],
            cwd=str(REPO), env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + startup_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"fst serve exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"fst serve did not answer /healthz in {startup_timeout:g} s:\n{self.output()}")
            time.sleep(0.2)

    def output(self) -> str:
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        os.unlink(self.log.name)


@pytest.fixture(scope="module")
def server():
    s = ServerProcess("--workers", "2", "--queue", "8", "--max-body", str(MAIN_MAX_BODY),
                      "--max-size", str(MAIN_MAX_SIZE))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def jpeg(width: int, height: int, seed: int = 0) -> bytes:
    """A smooth, photo-like JPEG of the given size."""
    from fst.loadtest import test_image

    data, _ = test_image(max(width, height), seed)
    img = Image.open(io.BytesIO(data)).convert("RGB").resize((width, height))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92)
    return buf.getvalue()


def decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.float32)


def assert_json_error(response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    return body["error"]


def metric_value(text: str, name: str, **labels) -> float:
    """A sample's value from Prometheus text (0 when the labelled series is absent)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


# ------------------------------------------------------------------------------ basics


def test_healthz_and_no_torch_in_the_server(server, client):
    r = client.get("/healthz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and "starry_night" in body["models"]
    assert body["workers"] == 2 and body["queue"] == 8
    with open(f"/proc/{server.proc.pid}/maps") as f:
        maps = f.read()
    assert "onnxruntime" in maps  # the sessions are loaded at start
    assert "libtorch" not in maps and "/torch/" not in maps


def test_stylize_raw_body(client):
    original = KITTEN.read_bytes()
    r = client.post("/v1/stylize", content=original, headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"  # the default format
    assert r.headers["x-fst-model"] == "starry_night"
    out = decode(r.content)
    assert out.format == "PNG" and out.size == (320, 240)
    assert r.headers["x-fst-size"] == "320x240"
    diff = np.abs(pixels(out) - pixels(decode(original))).mean()
    assert diff > 10, f"the answer looks like the input (mean |diff| {diff:.1f})"


def test_stylize_multipart_fields_override_the_query(client):
    r = client.post(
        "/v1/stylize",
        params={"format": "png", "strength": "1"},
        files={"image": ("castle.jpg", CASTLE.read_bytes(), "image/jpeg")},
        data={"format": "webp", "strength": "0.5", "model": "starry_night", "preserve_color": "false"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/webp"
    out = decode(r.content)
    assert out.format == "WEBP" and out.size == (320, 172)


@pytest.mark.parametrize("fmt, content_type, pil_format", [
    ("png", "image/png", "PNG"), ("jpeg", "image/jpeg", "JPEG"), ("webp", "image/webp", "WEBP"), ("jpg", "image/jpeg", "JPEG"),
])
def test_each_format_has_its_content_type_and_decodes(client, fmt, content_type, pil_format):
    r = client.post("/v1/stylize", params={"format": fmt}, headers=IMAGE, content=CASTLE.read_bytes())
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == content_type
    out = decode(r.content)
    assert out.format == pil_format and out.size == (320, 172)


def test_output_size_equals_input_size_and_max_size(client):
    for size in [(97, 61), (64, 200)]:  # odd sizes, portrait
        r = client.post("/v1/stylize", headers=IMAGE, content=jpeg(*size))
        assert r.status_code == 200, r.text
        assert decode(r.content).size == size
    # max_size downscales (keeping the aspect ratio) and never enlarges
    r = client.post("/v1/stylize", params={"max_size": 100}, headers=IMAGE, content=CASTLE.read_bytes())
    assert decode(r.content).size == (100, 54)
    r = client.post("/v1/stylize", params={"max_size": 1000}, headers=IMAGE, content=CASTLE.read_bytes())
    assert decode(r.content).size == (320, 172)
    # the server's --max-size caps everything, whatever the request asks
    big = jpeg(512, 384)
    assert decode(client.post("/v1/stylize", headers=IMAGE, content=big).content).size == (MAIN_MAX_SIZE, 300)
    r = client.post("/v1/stylize", params={"max_size": 5000}, headers=IMAGE, content=big)
    assert decode(r.content).size == (MAIN_MAX_SIZE, 300)


def test_strength_zero_returns_the_original(client):
    original = KITTEN.read_bytes()
    r = client.post("/v1/stylize", params={"strength": 0, "format": "png"}, headers=IMAGE, content=original)
    assert r.status_code == 200
    diff = np.abs(pixels(decode(r.content)) - pixels(decode(original)))
    assert diff.max() <= 1.0
    half = client.post("/v1/stylize", params={"strength": 0.5, "format": "png"}, headers=IMAGE, content=original)
    full = client.post("/v1/stylize", params={"strength": 1, "format": "png"}, headers=IMAGE, content=original)
    d_half = np.abs(pixels(decode(half.content)) - pixels(decode(original))).mean()
    d_full = np.abs(pixels(decode(full.content)) - pixels(decode(original))).mean()
    assert 0.3 * d_full < d_half < 0.7 * d_full


def test_preserve_color_keeps_the_photo_colours(client):
    original = pixels(decode(KITTEN.read_bytes()))
    plain = pixels(decode(client.post("/v1/stylize", headers=IMAGE, content=KITTEN.read_bytes()).content))
    kept = pixels(decode(client.post("/v1/stylize", params={"preserve_color": "true"}, headers=IMAGE, content=KITTEN.read_bytes()).content))

    def chroma(rgb):  # per-pixel deviation from grey
        return rgb - rgb.mean(axis=2, keepdims=True)

    assert np.abs(chroma(kept) - chroma(original)).mean() < 0.5 * np.abs(chroma(plain) - chroma(original)).mean()


def test_models_listing_and_paintings(client):
    r = client.get("/v1/models")
    assert r.status_code == 200
    body = r.json()
    assert body["default"] == "starry_night"
    names = [m["name"] for m in body["models"]]
    assert "starry_night" in names
    expected = {p.name[: -len(".onnx")] for p in (REPO / "export").glob("*.onnx")
                if not p.name.endswith((".fp16.onnx", ".int8.onnx"))}
    assert set(names) == expected
    m = next(m for m in body["models"] if m["name"] == "starry_night")
    assert m["default"] is True
    assert m["painting"] == "The Starry Night" and m["artist"] == "Vincent van Gogh"
    assert "fst.convention" in m["metadata"] and m["metadata"]["fst.style"] == m["style"]
    assert m["painting_url"] == "/v1/models/starry_night/painting"
    one = client.get("/v1/models/starry_night")
    assert one.status_code == 200 and one.json()["name"] == "starry_night"
    thumb = client.get(m["painting_url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert max(decode(thumb.content).size) <= 384
    assert_json_error(client.get("/v1/models/no_such_style/painting"), 404)
    assert_json_error(client.get("/v1/models/no_such_style"), 404)


def test_docs_and_the_web_page_are_served(client):
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/v1/stylize" in spec["paths"] and "/v1/models" in spec["paths"]
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "/static/app.js" in page.text
    assert client.get("/static/app.js").status_code == 200


def test_metrics_change_after_requests(client):
    before = client.get("/metrics")
    assert before.status_code == 200 and before.headers["content-type"].startswith("text/plain")
    text = before.text
    for name in ["fst_http_requests_total", "fst_http_request_duration_seconds_bucket", "fst_http_requests_in_flight",
                 "fst_rejected_total", "fst_workers_busy", "fst_queue_waiting"]:
        assert name in text
    ok_before = metric_value(text, "fst_http_requests_total", method="POST", path="/v1/stylize", status="200")
    bad_before = metric_value(text, "fst_http_requests_total", method="POST", path="/v1/stylize", status="415")
    hist_before = metric_value(text, "fst_http_request_duration_seconds_count", method="POST", path="/v1/stylize")
    inf_before = metric_value(text, "fst_inference_duration_seconds_count", model="starry_night")

    assert client.post("/v1/stylize", headers=IMAGE, content=KITTEN.read_bytes()).status_code == 200
    assert client.post("/v1/stylize", headers=IMAGE, content=KITTEN.read_bytes()).status_code == 200
    assert client.post("/v1/stylize", headers=IMAGE, content=b"not an image at all").status_code == 415

    after = client.get("/metrics").text
    assert metric_value(after, "fst_http_requests_total", method="POST", path="/v1/stylize", status="200") == ok_before + 2
    assert metric_value(after, "fst_http_requests_total", method="POST", path="/v1/stylize", status="415") == bad_before + 1
    assert metric_value(after, "fst_http_request_duration_seconds_count", method="POST", path="/v1/stylize") == hist_before + 3
    assert metric_value(after, "fst_inference_duration_seconds_count", model="starry_night") == inf_before + 2
    assert metric_value(after, "fst_http_requests_in_flight") >= 1  # the /metrics request itself


# ------------------------------------------------------------------------------ errors


def test_413_body_too_large(client, server):
    too_big = b"\xff" * (MAIN_MAX_BODY + 100_000)
    # Announced by Content-Length: refused before reading.
    message = assert_json_error(client.post("/v1/stylize", headers=IMAGE, content=too_big), 413)
    assert "limit" in message
    # Chunked, no Content-Length: refused while reading.

    def chunks():
        for i in range(0, len(too_big), 64 * 1024):
            yield too_big[i : i + 64 * 1024]

    assert_json_error(client.post("/v1/stylize", headers=IMAGE, content=chunks()), 413)
    assert metric_value(client.get("/metrics").text, "fst_rejected_total", reason="too_large") >= 2
    assert client.get("/healthz").status_code == 200


def test_413_too_many_pixels_from_the_header(client, bad_images):
    bomb = bad_images["bomb"].read_bytes()
    assert decode_size(bomb) == (BOMB_SIZE, BOMB_SIZE)
    t0 = time.monotonic()
    message = assert_json_error(client.post("/v1/stylize", headers=IMAGE, content=bomb), 413)
    assert "100000x100000" in message
    assert time.monotonic() - t0 < 5  # nothing was decoded
    assert_json_error(client.post("/v1/stylize", files={"image": ("bomb.png", bomb, "image/png")}), 413)


def decode_size(png: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def test_400_and_415_for_garbage(client, bad_images):
    assert_json_error(client.post("/v1/stylize", headers=IMAGE, content=bad_images["text"].read_bytes()), 415)
    assert_json_error(client.post("/v1/stylize", headers=IMAGE, content=os.urandom(5000)), 415)
    assert_json_error(client.post("/v1/stylize", headers=IMAGE, content=bad_images["truncated"].read_bytes()), 400)
    assert_json_error(client.post("/v1/stylize", headers=IMAGE, content=b""), 400)
    # multipart without the image field, and a malformed multipart body
    assert_json_error(client.post("/v1/stylize", data={"strength": "1"}, files={"other": ("x.jpg", b"x")}), 400)
    bad_multipart = client.post("/v1/stylize", content=b"--nope\r\n garbage",
                                headers={"Content-Type": "multipart/form-data; boundary=xyz"})
    assert bad_multipart.status_code == 400


def test_404_unknown_model(client):
    message = assert_json_error(client.post("/v1/stylize", params={"model": "no_such_style"}, headers=IMAGE, content=KITTEN.read_bytes()), 404)
    assert "starry_night" in message  # lists what is available
    assert_json_error(client.post("/v1/stylize", files={"image": ("k.jpg", KITTEN.read_bytes())}, data={"model": "nope"}), 404)
    assert_json_error(client.get("/no/such/page"), 404)


@pytest.mark.parametrize("params", [
    {"strength": "1.5"}, {"strength": "-0.1"}, {"strength": "abc"}, {"strength": "nan"}, {"format": "gif"},
    {"max_size": "0"}, {"max_size": "big"}, {"preserve_color": "maybe"},
])
def test_422_bad_query_parameters(client, params):
    message = assert_json_error(client.post("/v1/stylize", params=params, headers=IMAGE, content=KITTEN.read_bytes()), 422)
    assert next(iter(params)) in message


@pytest.mark.parametrize("fields", [{"strength": "2"}, {"strength": "x"}, {"format": "bmp"}, {"max_size": "-3"},
                                    {"preserve_color": "perhaps"}])
def test_422_bad_multipart_fields(client, fields):
    r = client.post("/v1/stylize", files={"image": ("k.jpg", KITTEN.read_bytes(), "image/jpeg")}, data=fields)
    assert next(iter(fields)) in assert_json_error(r, 422)


def test_422_image_too_small(client, bad_images):
    assert "too small" in assert_json_error(client.post("/v1/stylize", headers=IMAGE, content=bad_images["tiny"].read_bytes()), 422)


@pytest.fixture(scope="module")
def tight_server():
    s = ServerProcess("--workers", "1", "--queue", "1")
    yield s
    s.stop()


def test_503_with_retry_after_when_the_queue_is_full(tight_server):
    s = tight_server
    rejected_before = metric_value(httpx.get(f"{s.url}/metrics").text, "fst_rejected_total", reason="queue_full")
    body = jpeg(512, 384)
    results: list[httpx.Response] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def one():
        with httpx.Client(timeout=60) as c:
            barrier.wait()
            r = c.post(f"{s.url}/v1/stylize", headers=IMAGE, content=body)
        with lock:
            results.append(r)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(r.status_code for r in results)
    assert set(statuses) <= {200, 503}, statuses
    assert statuses.count(200) >= 1 and statuses.count(503) >= 1, statuses
    for r in results:
        if r.status_code == 503:
            assert_json_error(r, 503)
            assert int(r.headers["retry-after"]) >= 1
        else:
            assert decode(r.content).size == (512, 384)
    metrics = httpx.get(f"{s.url}/metrics").text
    assert metric_value(metrics, "fst_rejected_total", reason="queue_full") == rejected_before + statuses.count(503)
    assert httpx.get(f"{s.url}/healthz").json()["status"] == "ok"


def test_a_queued_request_whose_client_left_is_skipped(tight_server):
    s = tight_server
    inferences = metric_value(httpx.get(f"{s.url}/metrics").text, "fst_inference_duration_seconds_count", model="starry_night")
    answers: list[int] = []
    big = threading.Thread(target=lambda: answers.append(httpx.post(f"{s.url}/v1/stylize", headers=IMAGE, content=jpeg(1600, 1200), timeout=60).status_code))
    big.start()
    deadline = time.monotonic() + 10
    while httpx.get(f"{s.url}/healthz").json()["running"] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    with pytest.raises(httpx.ReadTimeout):  # queued behind the big one; this client gives up
        httpx.post(f"{s.url}/v1/stylize", headers=IMAGE, content=jpeg(64, 48), timeout=0.3)
    big.join()
    assert answers == [200]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        metrics = httpx.get(f"{s.url}/metrics").text
        if metric_value(metrics, "fst_http_requests_total", method="POST", path="/v1/stylize", status="499"):
            break
        time.sleep(0.05)
    assert metric_value(metrics, "fst_http_requests_total", method="POST", path="/v1/stylize", status="499") == 1
    assert metric_value(metrics, "fst_inference_duration_seconds_count", model="starry_night") == inferences + 1
    health = httpx.get(f"{s.url}/healthz").json()
    assert health["running"] == 0 and health["waiting"] == 0


def test_504_after_the_timeout():
    s = ServerProcess("--timeout", "0.05", "--workers", "1")
    try:
        r = httpx.post(f"{s.url}/v1/stylize", headers=IMAGE, content=jpeg(1024, 768), timeout=60)
        assert "timeout" in assert_json_error(r, 504)
        # the server is fine afterwards: cheap requests still answer
        assert httpx.get(f"{s.url}/healthz").json()["status"] == "ok"
        metrics = httpx.get(f"{s.url}/metrics").text
        assert metric_value(metrics, "fst_rejected_total", reason="timeout") >= 1
        assert metric_value(metrics, "fst_http_requests_total", method="POST", path="/v1/stylize", status="504") >= 1
    finally:
        s.stop()


def test_bad_serve_arguments_fail_cleanly(fst_cli, tmp_path):
    code, _, err = fst_cli("serve", "--models", str(tmp_path), "--port", str(free_port()), timeout=60)
    assert code == 2 and "no .onnx models" in err and "Traceback" not in err
    code, _, err = fst_cli("serve", "--models", str(tmp_path / "missing"), timeout=60)
    assert code == 2 and "no such models folder" in err


# ------------------------------------------------------------------------------ load


def run_loadtest(*args: str) -> tuple[int, dict | None, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-m", "fst.loadtest", *args, "--json"], capture_output=True, text=True,
                          timeout=120, cwd=str(REPO), env=env)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        report = None
    return proc.returncode, report, proc.stderr


def test_loadtest_small_load_has_no_errors(server):
    code, report, err = run_loadtest("--url", server.url, "--clients", "4", "--requests", "40", "--size", "128")
    assert code == 0, (report, err)
    assert report["ok"] == 40 and report["errors"] == 0 and report["statuses"] == {"200": 40}
    assert report["image"] == "128x96"
    lat = report["latency_ms"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert report["throughput_rps"] > 0


def test_loadtest_refuses_non_loopback_hosts():
    from fst.loadtest import check_loopback, main

    for url in ["http://192.0.2.1:8000", "http://example.com", "http://10.1.2.3", "ftp://127.0.0.1"]:
        with pytest.raises(ValueError):
            check_loopback(url)
        assert main(["--url", url, "--requests", "1"]) == 2
    assert check_loopback("http://127.3.4.5:9/") == "http://127.3.4.5:9"
    assert check_loopback("http://localhost:8000") == "http://localhost:8000"
    assert check_loopback("http://[::1]:8000") == "http://[::1]:8000"


def test_loadtest_counts_wrong_answers(server):
    # Without --allow-503 any non-200 is an error: an unknown model gives 404 on every request.
    code, report, _ = run_loadtest("--url", server.url, "--clients", "2", "--requests", "4", "--size", "64",
                                   "--model", "no_such_style")
    assert code == 1 and report["errors"] == 4 and report["statuses"] == {"404": 4}


def test_burst_of_64_clients_against_queue_8(server):
    rss_before = server.rss_mb()
    code, report, err = run_loadtest("--url", server.url, "--clients", "64", "--requests", "128", "--size", "256",
                                     "--allow-503")
    assert code == 0, (report, err)
    assert set(report["statuses"]) <= {"200", "503"}, report["statuses"]
    assert report["statuses"].get("503", 0) >= 1 and report["statuses"].get("200", 0) >= 1
    assert report["ok"] + report["rejected_503"] == 128
    assert server.proc.poll() is None
    health = httpx.get(f"{server.url}/healthz", timeout=10).json()
    assert health["status"] == "ok" and health["running"] == 0 and health["waiting"] == 0
    rss_after = server.rss_mb()
    assert rss_after - rss_before < 500, (rss_before, rss_after)
    assert rss_after < 1500
    metrics = httpx.get(f"{server.url}/metrics").text
    assert metric_value(metrics, "fst_rejected_total", reason="queue_full") >= report["rejected_503"]
