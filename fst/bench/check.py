"""Do a baseline and fst compute the same loss? Both evaluate the loss on the same inputs; their
relative difference must stay within what rounding alone can explain.

The bound, for two evaluations of one loss in one precision that differ only in the order of
their arithmetic (batched or separate VGG passes, another convolution algorithm):
  * every convolution output is a sum of K products accumulated in float32 and rounded once to
    the compute precision: a relative error of about u + sqrt(K) u32 per layer (u: the unit
    roundoff, 2^-24 for float32, 2^-8 for bfloat16; sqrt(K) u32: the usual estimate for the sum
    of K roundings of random sign); over L layers, L times that;
  * the loss is quadratic in the features: twice the features' relative error;
  * the loss's longest reduction (the mean over the N C H W content features) adds sqrt(n) u32;
  * two independent evaluations: twice the error of one.
    bound = 2 (2 L (u + sqrt(K) u32) + sqrt(n) u32)
A baseline that computed anything else (a missing term, another layer, a weight off) misses it
by far more: the smallest term, TV, is about 1e-2 of the total.
"""

from __future__ import annotations

import math

U32 = 2.0**-24
UNIT_ROUNDOFF = {"float32": U32, "bfloat16": 2.0**-8, "float16": 2.0**-11}


def vgg_depth(layer: str) -> tuple[int, int]:
    """(convolutions up to `layer`, the longest sum K = 9 x input channels among them)."""
    from fst.vgg import LAYER_NAMES, _CFG

    convs = sum(1 for name in LAYER_NAMES[: LAYER_NAMES.index(layer) + 1] if name.startswith("conv"))
    widths = [3] + [v for v in _CFG if v != "M"]
    return convs, 9 * max(widths[:convs])


def loss_bound(deepest_layer: str, longest_mean: int, precision: str) -> float:
    layers, k = vgg_depth(deepest_layer)
    u = UNIT_ROUNDOFF[precision]
    return 2 * (2 * layers * (u + math.sqrt(k) * U32) + math.sqrt(longest_mean) * U32)


def agreement(fst_value: float, baseline_value: float, bound: float) -> dict:
    """The check's record for the report: values, relative difference, bound, pass."""
    difference = abs(baseline_value - fst_value) / max(abs(fst_value), 1e-30)
    return {"fst_loss": fst_value, "baseline_loss": baseline_value, "relative_difference": difference,
            "bound": bound, "ok": bool(difference <= bound)}
