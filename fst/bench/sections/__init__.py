"""The sections of `fst bench`, in the order they run: name -> function(Context) -> result dict
with "rows" (peak: "probes"). A section is one module; add one here to have it run and reported
(its rows get the generic table in fst/bench/report.py unless a layout is added there).
OPT_IN sections run only when --only names them."""

from __future__ import annotations

import importlib

SECTIONS = {
    "peak": "fst.bench.sections.peak:run",
    "stylize": "fst.bench.sections.stylize:run",
    "command": "fst.bench.sections.command:run",
    "train": "fst.bench.sections.train:run",
    "optimize": "fst.bench.sections.optimize:run",
    "video": "fst.video.bench:run",
    "quality": "fst.bench.sections.quality:run",
}
# video: 4-5 minutes on 2 cores (whole commands on 5 s of a clip, twice each, and the memory runs),
# about as long as all the others together, and it needs the video extra and a clip
# quality: training runs of 15 minutes a side by default
OPT_IN = {"video", "quality"}


def section(name: str):
    module, function = SECTIONS[name].split(":")
    return getattr(importlib.import_module(module), function)
