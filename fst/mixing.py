"""Picking a style of a collection, or mixing several: the style weights a collection takes.

A collection network holds S styles (fst.transformer.StyleNorm); its input `style_weights` is
(S,) float32. One style: a one-hot row. A mix `a=0.6,b=0.4`: those weights, normalised to sum to 1,
so the norm layers' scales and shifts are interpolated between the styles'. No torch here: part of
`fst stylize` and `fst serve`.
"""

from __future__ import annotations

import numpy as np

from fst import FstError, parse_weighted, shown


class UnknownStyle(FstError):
    """A style name the collection does not hold (`fst serve` answers it 404, like an unknown model)."""


def parse_mix(text: str) -> list[tuple[str, float]]:
    """'starry_night=0.6,the_scream=0.4' -> [('starry_night', 0.6), ('the_scream', 0.4)]."""
    parts = parse_weighted(text, "--mix", "STYLE=WEIGHT,STYLE=WEIGHT with weights >= 0")
    if not parts or sum(w for _, w in parts) <= 0:
        raise FstError("--mix: give at least one style with a positive weight (STYLE=WEIGHT,...)")
    return parts


def style_weights(names: list[str], style: str | None = None, mix: str | list | None = None,
                  model: str = "this model") -> tuple[np.ndarray | None, str]:
    """A collection's style names and the user's choice -> ((S,) float32 weights summing to 1, a
    label for file names). A single-style network (no names) takes no choice: (None, '').
    No choice picks the collection's first style."""
    if not names:
        if style or mix:
            raise FstError(f"{model} holds one style: --style and --mix choose among a collection's styles")
        return None, ""
    if style and mix:
        raise FstError("--style picks one style and --mix mixes several: give one of them")
    parts = parse_mix(mix) if isinstance(mix, str) else list(mix or []) or [(style or names[0], 1.0)]
    unknown = [name for name, _ in parts if name not in names]
    if unknown:
        raise UnknownStyle(f"{model} has no style {shown(unknown[0])} (its styles: {', '.join(names)})")
    # Each weight over the largest first, in float64: huge weights (1e300 parses) sum to no inf
    # (a NaN mix, garbage pictures), and the sum of the rest stays exact enough to normalise.
    top = max(weight for _, weight in parts)
    weights = np.zeros(len(names))
    for name, weight in parts:
        weights[names.index(name)] += weight / top
    weights = (weights / weights.sum()).astype(np.float32)
    used = [(names[i], weights[i]) for i in np.flatnonzero(weights)]
    label = used[0][0] if len(used) == 1 else "+".join(f"{n}{round(100 * w)}" for n, w in used)
    return weights, label
