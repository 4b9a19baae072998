"""fst bench's output: the same tables as aligned text (default), as the Markdown README's
Performance section shows (--markdown: pasted into README as printed), or the report as JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    bold: list[bool] = field(default_factory=list)  # fst's rows


def _x(value) -> str:
    return "—" if value is None else f"{value:.2f}×"


def _mem(row: dict) -> str:
    m = row["memory"]
    text = f"{m['peak_rss_mb']:.0f}"
    if "peak_rss_over_start_mb" in m:
        text += f" (+{m['peak_rss_over_start_mb']:.0f})"
    if "cuda_peak_over_start_mb" in m:
        text += f"; GPU +{m['cuda_peak_over_start_mb']:.0f}"
    return text


def _pct(row: dict) -> str:
    return f"{row['percent_of_peak']:.0f} %" if row.get("percent_of_peak") is not None else "—"


def _check(row: dict) -> str:
    c = row.get("check")
    if not c:
        return "—"
    return f"{c['relative_difference']:.1e} ≤ {c['bound']:.0e}" if c["ok"] else f"FAILED {c['relative_difference']:.1e} > {c['bound']:.0e}"


def _add(table: Table, row: dict, cells: list[str]) -> None:
    size = f"{row['size']}²" if row.get("size") else "—"
    table.rows.append([size, row["name"], *cells])
    table.bold.append(row.get("role") == "fst")


def _peak(result: dict) -> Table:
    table = Table("Peak: the highest rate of large kernels in this run (the % of peak columns divide by it)",
                  ["precision", "kernel", "GFLOP/s (best)", "GFLOP/s (median)"])
    for p in result["probes"]:
        table.rows.append([p["precision"], p["name"], f"{p['gflops']:.1f}", f"{p['median_gflops']:.1f}"])
        table.bold.append(p["gflops"] == result["gflops"][p["precision"]])
    return table


def _stylize(result: dict) -> Table:
    table = Table("Stylize: one image in this process (network only)",
                  ["size", "implementation", "precision", "ms", "vs PE, same network", "vs PE, its network",
                   "GFLOP/s", "% of peak", "max diff vs PE (0..255)", "peak RSS MB (+during)"])
    for r in result["rows"]:
        if r["role"] == "collection":  # its own figure is a note: time against the single network
            continue
        diff = f"{r['max_difference_255']:.3f}" if "max_difference_255" in r else "—"
        _add(table, r, [r["precision"], f"{r['seconds'] * 1000:.1f}", _x(r.get("speedup_vs_same_network")),
                        _x(r.get("speedup_vs_pe")), f"{r['gflops']:.1f}", _pct(r), diff, _mem(r)])
    return table


def _command(result: dict) -> Table:
    size = result["sizes"][0]
    table = Table(f"Whole command: one {size}×{size} JPEG, a fresh process each run",
                  ["size", "command", "s (median)", "min–max", "vs PE, same network", "vs PE, its network", "peak RSS MB"])
    for r in result["rows"]:
        _add(table, r, [f"{r['seconds']:.2f}", f"{min(r['times']):.2f}–{max(r['times']):.2f}",
                        _x(r.get("speedup_vs_same_network")), _x(r.get("speedup_vs_pe")), f"{r['memory']['peak_rss_mb']:.0f}"])
    return table


def _train(result: dict) -> Table:
    table = Table(f"Training step: batch {result['batch']}, style image {result['style_size']} px",
                  ["size", "implementation", "s/step", "images/s", "vs PE, same network", "vs PE, its network",
                   "GFLOP/s", "% of peak", "loss vs fst (bound)", "peak RSS MB (+during)"])
    for r in result["rows"]:
        _add(table, r, [f"{r['seconds']:.3f}", f"{r['images_per_s']:.2f}", _x(r.get("speedup_vs_same_network")),
                        _x(r.get("speedup_vs_pe")), f"{r['gflops']:.0f}", _pct(r), _check(r), _mem(r)])
    return table


def _optimize(result: dict) -> Table:
    table = Table("fst optimize (L-BFGS): seconds per loss evaluation",
                  ["size", "implementation", "s/evaluation", "vs tutorial", "loss vs fst (bound)", "peak RSS MB (+during)"])
    for r in result["rows"]:
        _add(table, r, [f"{r['seconds']:.3f}", _x(r.get("speedup_vs_pe")), _check(r), _mem(r)])
    return table


def _ratio(value) -> str:
    return "—" if value is None else f"{value:.2f}"


def video_table(result: dict) -> Table:
    """fst.video.bench's rows: speed, flicker and style term of the whole command, stabilized beside per-frame."""
    size = f", --max-size {result['max_size']}" if result.get("max_size") else ""
    cut = f"the first {result['seconds_of_clip']:g} s" if result.get("seconds_of_clip") else "all"
    r = result["ratios"]
    table = Table(f"Video: fst stylize {result['clip']} -m {result['model']} ({cut}{size}), whole command in fresh "
                  f"processes, best of {result['repeats']}; stabilized / per-frame: warping error "
                  f"{_ratio(r['warping_error'])}, time per frame {_ratio(r['time_per_frame'])}, style term "
                  f"{_ratio(r['style'])}",
                  ["frames", "mode", "s", "fps", "warping error (source)", "style term", "peak RSS MB"])
    for row in result["rows"]:
        flicker = f"{row['warping_error']:.2f} ({row['source_warping_error']:.2f})" if "warping_error" in row else "—"
        style = f"{row['style']:.3f}" if row.get("style") is not None else "—"
        mode = row["name"] + (f" (--max-size {row['max_size']})" if "max_size" in row else "")
        table.rows.append([str(row["frames"]), mode, f"{row['seconds']:.1f}", f"{row['fps']:.2f}", flicker, style,
                           f"{row['memory']['peak_rss_mb']:.0f}"])
        table.bold.append(row["role"] == "fst")
    return table


def _generic(name: str, result: dict) -> Table:
    """Any other section (e.g. one added at merge): its rows' names, sizes and times."""
    table = Table(name, ["size", "implementation", "s (median)", "peak RSS MB"])
    for r in result.get("rows", []):
        _add(table, r, [f"{r['seconds']:.3f}", f"{r['memory']['peak_rss_mb']:.0f}" if r.get("memory") else "—"])
    return table


def _minutes(value: float) -> str:
    return f"{value:.2f}" if value < 1 else f"{value:.1f}"  # --quick's runs are seconds long


def _style_weight(result: dict) -> str:
    """'style weight 6.5 (the target's 5), ' where bench --style-weight trained both sides at another
    weight than the target's (reports made before the option: nothing)."""
    weight, own = result.get("style_weight"), result.get("target_style_weight")
    return f"style weight {weight:g} (the target's {own:g}), " if weight is not None and weight != own else ""


def _missed(point: dict, target: dict) -> str:
    """Which of a point's figures are above the target's, to 4 places (3 may print them equal)."""
    return ", ".join(f"{name.replace('_', ' ')} {point[name]:.4f} > {target[name]:.4f}"
                     for name in ("style_ratio", "content") if point[name] > target[name])


def _full_training(full: dict | None) -> str:
    """The target's own training time here (fst.bench.sections.quality.full_training)."""
    if not full:
        return "—"
    return (f"{full['minutes']:.1f} min here ({full['steps']} steps × {full['step_seconds']:.3f} s; the fst side's step "
            f"{full['side_step_seconds']:.3f} s)")


def _quality(result: dict) -> list[Table]:
    """The time to the target (the shipped model's figures) of each side, then their curves."""
    from fst.bench.sections.quality import reached as reached_target

    t, size = result["target"], "own size" if result["eval_size"] == "own" else f"{result['eval_size']} px"
    summary = Table(f"Time to quality: training time until {result['model']}'s held-out figures ({result['held_out']} "
                    f"photos at {size}: style ratio ≤ {t['style_ratio']:.3f}, content ≤ {t['content']:.3f}); "
                    f"{result['crop']}² crops, batch {result['batch']}, {_style_weight(result)}{result['photos']} photos, at most "
                    f"{result['minutes']:.3g} min each",
                    ["minutes", "training", "of the full training", "step", "style ratio mean (max)", "content mean",
                     "loss vs fst (bound)"])
    full = result.get("full_training")
    summary.rows.append(["—", f"{result['model']} ({'shipped, ' if result.get('shipped') else ''}the target)", _full_training(full),
                         str(t["step"] or "—"), f"{t['style_ratio']:.3f} ({t['max_style_ratio']:.3f})", f"{t['content']:.3f}", "—"])
    summary.bold.append(False)
    for r in result["rows"]:
        p = r["shown"]
        reached = (_minutes(r["minutes_to_target"]) if r["minutes_to_target"] is not None
                   else f"not reached in {r['budget_minutes']:.3g} (lowest style ratio at {_minutes(p['minutes'])}: "
                        f"{_missed(p, t)})")
        share = r.get("share_of_full_training")
        share = "—" if share is None else f"{100 * share:.1f} %" if r["minutes_to_target"] is not None else f"over {100 * share:.1f} %"
        summary.rows.append([reached, r["name"], share, str(p["step"]), f"{p['style_ratio']:.3f} ({p['max_style_ratio']:.3f})",
                             f"{p['content']:.3f}", _check(r)])
        summary.bold.append(r["role"] == "fst")
    curve = Table(f"Time to quality: held-out figures against training minutes, every {result['every_seconds']:g} s "
                  "of training", ["minutes", "training", "step", "style ratio mean (max)", "content mean", "target reached"])
    for r in result["rows"]:
        for p in r["curve"]:
            curve.rows.append([_minutes(p["minutes"]), r["name"], str(p["step"]),
                               f"{p['style_ratio']:.3f} ({p['max_style_ratio']:.3f})", f"{p['content']:.3f}",
                               "yes" if reached_target(p, t) else ""])
            curve.bold.append(r["role"] == "fst")
    return [summary, curve]


LAYOUTS = {"peak": _peak, "stylize": _stylize, "command": _command, "train": _train, "optimize": _optimize,
           "video": video_table, "quality": _quality}


def tables(report: dict) -> list[Table]:
    out = []
    for name, result in report["sections"].items():
        made = LAYOUTS[name](result) if name in LAYOUTS else _generic(name, result)
        out += made if isinstance(made, list) else [made]  # a section may show more than one table
    return out


def header_lines(report: dict) -> list[str]:
    m, mdl, s = report["machine"], report["model"], report["settings"]
    cores = f"{m['logical_cores']} logical cores" + (f" ({m['physical_cores']} physical)" if m.get("physical_cores") else "")
    isa = ", ".join(m["isa"]) or "none reported"
    if m.get("emulated_isa"):  # --isa avx2: what the processes saw, not what the hardware has
        isa += f" (emulated by --isa {m['emulated_isa']}: CPUID masked for every library)"
    counts = ", ".join(f"{k} {s['warmup'][k]}+{s['repeats'][k]}" for k in report["sections"] if k in s["repeats"])
    return [
        f"**Machine:** {m['cpu']}, {cores}, {m['os']}; CPU features: {isa}; torch's kernels: "
        f"{m['torch_cpu_capability']}" + (f", oneDNN up to {m['onednn_max_cpu_isa']}" if m.get("onednn_max_cpu_isa") else "")
        + (f"; GPU {m['gpu']}" if m.get("gpu") else "") + ".",
        f"**Software:** fst {report['fst_version']}, Python {m['python']}, torch {m['torch']} ({m['torch_threads']} threads), "
        f"onnxruntime {m['onnxruntime']}, numpy {m['numpy']}.",
        f"**Run:** `{report['command']}`, device {report['device']}, {report['seconds_total']:.0f} s; "
        + (f"medians of the timed calls after warm-up ({counts}); " if counts else "")
        + "vs X = X's time / fst's time, only between rows of one precision.",
        f"**Model:** {mdl['label']}, width {mdl['architecture']['channels']}, {mdl['architecture']['res_blocks']} residual "
        f"blocks: {mdl['macs_per_megapixel'] / 1e9:.2f} GMAC per megapixel (PE's width 32: {mdl['pe_macs_per_megapixel'] / 1e9:.2f}).",
    ]


def markdown(report: dict) -> str:
    lines = header_lines(report) + [f"**{n}**" for n in report["notes"] if n.startswith("WARNING")]
    lines = [line + "  " for line in lines[:-1]] + lines[-1:]  # Markdown line breaks
    for table in tables(report):
        lines += ["", f"#### {table.title}", "", "| " + " | ".join(table.headers) + " |",
                  "|" + "|".join("---" if i < 2 else "---:" for i in range(len(table.headers))) + "|"]
        for cells, bold in zip(table.rows, table.bold):
            cells = list(cells)
            if bold:
                cells[1] = f"**{cells[1]}**"
            lines.append("| " + " | ".join(cells) + " |")
    notes = [n for n in report["notes"] if not n.startswith("WARNING")]
    if notes:
        lines += ["", "Notes:"] + [f"- {n}" for n in notes]
    return "\n".join(lines)


def table_text(table: Table) -> str:
    """The table as aligned text, its title first; fst's rows marked *."""
    grid = [table.headers] + [[("* " if bold else "  ") + c if i == 1 else c for i, c in enumerate(cells)]
                              for cells, bold in zip(table.rows, table.bold)]
    grid[0] = [("  " + h if i == 1 else h) for i, h in enumerate(grid[0])]
    widths = [max(len(row[i]) for row in grid) for i in range(len(table.headers))]
    return "\n".join([table.title] + ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
                                      for row in grid])


def text(report: dict) -> str:
    lines = [line.replace("**", "").replace("`", "") for line in header_lines(report)]
    lines += [n for n in report["notes"] if n.startswith("WARNING")]
    for table in tables(report):
        lines += ["", table_text(table)]
    lines += ["", "* fst's rows. Notes:"] + [f"- {n}" for n in report["notes"] if not n.startswith("WARNING")]
    return "\n".join(lines)


def as_json(report: dict) -> str:
    return json.dumps(report, indent=2)
