"""peak: this machine's practical peak GFLOP/s per precision, measured in the same run, so that
every "% of peak" is against a rate this machine reached. The highest of several large kernels
(the best of the timed repeats): torch.mm, and in float32 also ONNX Runtime's MatMul and 3x3 Conv
(its convolution kernels beat torch.mm here, and the stylize rows run them)."""

from __future__ import annotations

import numpy as np

from fst.bench.harness import log, median
from fst.bench.plan import Context


def _onnx_session(node, inputs: dict, weights: dict):
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [node], "probe", [helper.make_tensor_value_info(k, TensorProto.FLOAT, list(v.shape)) for k, v in inputs.items()],
        [helper.make_tensor_value_info(node.output[0], TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as fst's sessions
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return lambda: session.run(None, inputs)


def _probes(n: int, device) -> dict[str, tuple[str, int, object]]:
    """{name: (precision, multiply-accumulates, call)}."""
    import torch
    from onnx import helper

    rng = np.random.default_rng(0)
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    probes = {f"torch.mm {n}×{n} float32": ("float32", n**3, lambda: torch.mm(a, b))}
    a16, b16 = a.bfloat16(), b.bfloat16()
    probes[f"torch.mm {n}×{n} bfloat16"] = ("bfloat16", n**3, lambda: torch.mm(a16, b16))
    if device.type == "cpu":
        mat = rng.standard_normal((n, n), dtype=np.float32)
        probes[f"ONNX Runtime MatMul {n}×{n} float32"] = (
            "float32", n**3, _onnx_session(helper.make_node("MatMul", ["A", "B"], ["C"]), {"A": mat}, {"B": mat}))
        side, c = n // 8, 64
        x = rng.standard_normal((1, c, side, side), dtype=np.float32)
        w = rng.standard_normal((c, c, 3, 3), dtype=np.float32)
        conv = helper.make_node("Conv", ["x", "W"], ["y"], pads=[1, 1, 1, 1])
        probes[f"ONNX Runtime Conv 3×3 {c}→{c} at {side}² float32"] = (
            "float32", 9 * c * c * side * side, _onnx_session(conv, {"x": x}, {"W": w}))
    return probes


def run(ctx: Context) -> dict:
    plan = ctx.plan
    rows, peak = [], {}
    for name, (precision, macs, call) in _probes(plan.peak_n, ctx.device).items():
        if precision == "bfloat16" and not ctx.bf16:
            continue
        times, _ = ctx.timer.run(call, plan.warmup["peak"], plan.repeats["peak"])
        best = 2 * macs / min(times) / 1e9
        rows.append({"name": name, "precision": precision, "gflops": best, "median_gflops": 2 * macs / median(times) / 1e9,
                     "times": times})
        peak[precision] = max(peak.get(precision, 0.0), best)
        log(f"peak: {name}: {best:.1f} GFLOP/s (best of {len(times)})")
    ctx.peak = peak
    return {"probes": rows, "gflops": peak}
