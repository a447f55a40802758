#!/usr/bin/env python3
"""lossbench report: turns check and bench JSON into a folder people can read.

    report.py --out DIR [--check FILE]... [--bench FILE]... [--torch-bench FILE]...
              [--golden DIR] [--title TEXT] [--summary]

Inputs (any of them may be absent; a section with no input says "not measured"):
  --check        `lossbench check ... --json FILE` (any implementation, or PyTorch's stored
                 outputs scored with `--impl torch --results ...`)
  --bench        Google Benchmark JSON from `benchmarks/run.sh ... --json FILE`
  --torch-bench  `benchmarks/torch_side_by_side.py --json FILE`
  --golden       the corpus the checks ran on (default: the check file's own "corpus", else
                 golden/corpus of this repository); worst cases are copied from it

Output DIR (written to DIR.tmp, then renamed: no half-written folder remains):
  README.md, index.html (self-contained: images as data URIs), the PNGs, and
  cases/<impl>/<loss>-<dtype>[-<reduction>].json, the worst case of every accuracy cell.
Exit 0; 2 on bad input (the message names the file and what is wrong).
"""
import argparse
import base64
import datetime
import html
import io
import json
import math
import os
import shutil
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DTYPES = ["float64", "float32", "float16", "bfloat16"]
CORPUS_GROUPS = ["smoke", "reference", "special", "hard", "error"]
NOT_MEASURED = "not measured"


class BadInput(Exception):
    pass


# ------------------------------------------------------------------ reading the inputs

def load_json(path, what):
    try:
        with open(path) as f:
            return json.load(f)
    except OSError as e:
        raise BadInput(f"{path}: cannot read the {what} file ({e.strerror})")
    except json.JSONDecodeError as e:
        raise BadInput(f"{path}: not JSON ({e.msg} at line {e.lineno})")


def need(cond, path, message):
    if not cond:
        raise BadInput(f"{path}: {message}")


def ulp_value(v):
    if v == "inf":
        return math.inf
    if isinstance(v, (int, float)):
        return float(v)
    return math.nan


def impl_label(impl):
    return {"cpu": "lossbench cpu", "cuda": "lossbench cuda", "torch": "PyTorch 2.2 CPU",
            "torch-cuda": "PyTorch 2.2 CUDA"}.get(impl, impl)


def impl_order(impl):
    order = ["cpu", "cuda", "torch", "torch-cuda"]
    return (order.index(impl) if impl in order else len(order), impl)


def read_check(path):
    d = load_json(path, "check")
    need(isinstance(d, dict), path, "expected a JSON object (lossbench check --json)")
    for key in ("impl", "cases", "summary"):
        need(key in d, path, f'no "{key}": not the output of lossbench check --json')
    need(isinstance(d["cases"], list), path, '"cases" is not a list')
    for i, c in enumerate(d["cases"]):
        need(isinstance(c, dict) and all(k in c for k in ("id", "loss", "dtype", "verdict")),
             path, f"case #{i}: needs id, loss, dtype and verdict")
        for tensor, s in c.get("scores", {}).items():
            need(isinstance(s, dict) and "max_ulp" in s, path,
                 f'case {c["id"]}: score "{tensor}" has no max_ulp')
            need(not math.isnan(ulp_value(s["max_ulp"])), path,
                 f'case {c["id"]}: score "{tensor}": max_ulp {s["max_ulp"]!r} is not a number')
    d["_path"] = path
    return d


def read_bench(path):
    d = load_json(path, "bench")
    need(isinstance(d, dict) and isinstance(d.get("benchmarks"), list), path,
         'expected Google Benchmark JSON with a "benchmarks" list (benchmarks/run.sh --json)')
    need(isinstance(d.get("context"), dict), path, 'no "context" object')
    runs = {}
    for i, b in enumerate(d["benchmarks"]):
        need(isinstance(b, dict) and isinstance(b.get("name"), str), path,
             f"benchmark #{i} has no name")
        if b.get("run_type", "iteration") != "iteration":
            continue
        name = b.get("run_name", b["name"])
        parts = name.split("/")
        if parts[-1] == "real_time":
            parts = parts[:-1]
        if parts[0] != "loss":
            continue
        need(len(parts) == 6, path, f'benchmark "{name}": expected loss/LOSS/IMPL/DTYPE/SIZE/DIR')
        key = tuple(parts[1:])
        r = runs.setdefault(key, {"reps": [], "error": None})
        if b.get("error_occurred"):
            r["error"] = b.get("error_message", "error")
            continue
        need(b.get("time_unit", "ns") in ("ns", "us", "ms", "s"), path,
             f'benchmark "{name}": unknown time_unit {b.get("time_unit")!r}')
        need(isinstance(b.get("real_time"), (int, float)), path,
             f'benchmark "{name}": real_time is not a number')
        r["reps"].append(b)
    rows = []
    scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}
    for (loss, impl, dtype, size, direction), r in sorted(runs.items()):
        row = {"loss": loss, "impl": impl, "dtype": dtype, "size": size, "direction": direction,
               "error": r["error"], "reps": len(r["reps"])}
        if r["reps"]:
            def med(k):
                xs = [b[k] for b in r["reps"] if isinstance(b.get(k), (int, float))]
                return statistics.median(xs) if xs else None
            row["time_us"] = statistics.median(
                b["real_time"] * scale[b.get("time_unit", "ns")] for b in r["reps"])
            bps = med("bytes_per_second")
            row["GBps"] = bps * 1e-9 if bps else None
            row["pct_sol"] = med("pct_sol")
            row["roof_GBps"] = med("roof_GBps")
            row["max_ulp"] = med("max_ulp")
            row["sol_GBps"] = (row["GBps"] * 100 / row["pct_sol"]
                               if row["GBps"] and row["pct_sol"] else None)
        rows.append(row)
    return {"_path": path, "context": d["context"], "rows": rows}


def read_torch_bench(path):
    d = load_json(path, "PyTorch side-by-side")
    need(isinstance(d, dict) and isinstance(d.get("results"), list)
         and isinstance(d.get("context"), dict), path,
         'expected {"context": ..., "results": [...]} (benchmarks/torch_side_by_side.py --json)')
    keys = ("loss", "dtype", "size", "direction", "lossbench_median_s", "torch_median_s",
            "lossbench_GBps", "torch_GBps", "ratio_torch_over_lossbench")
    for i, r in enumerate(d["results"]):
        missing = [k for k in keys if k not in r] if isinstance(r, dict) else list(keys)
        need(not missing, path, f"result #{i} lacks {', '.join(missing)}")
    return {"_path": path, "context": d["context"], "rows": d["results"]}


def read_corpus(folder):
    cases = {}
    for g in CORPUS_GROUPS:
        p = os.path.join(folder, g + ".jsonl")
        if not os.path.exists(p):
            continue
        with open(p) as f:
            for line in f:
                j = json.loads(line)
                cases[j["id"]] = j["case"]
    return cases


# ------------------------------------------------------------------ accuracy

def cell_key(c):
    return (c["loss"], c["dtype"])


def accuracy(checks):
    """Per implementation and (loss, dtype, reduction): max ULP over every scored tensor, the
    worst case and tensor, and the verdict counts."""
    acc = {}
    for d in checks:
        impl = d["impl"]
        cells = acc.setdefault(impl, {})
        for c in d["cases"]:
            if c.get("group") == "error":  # rejected inputs: in the verdict table, no ULPs
                continue
            key = (c["loss"], c["dtype"], c.get("reduction", ""))
            cell = cells.setdefault(key, {"max": None, "worst": None, "verdicts": {},
                                          "ulps": []})
            cell["verdicts"][c["verdict"]] = cell["verdicts"].get(c["verdict"], 0) + 1
            for tensor, s in c.get("scores", {}).items():
                u = ulp_value(s["max_ulp"])
                cell["ulps"].append(u)
                if cell["max"] is None or u > cell["max"]:
                    cell["max"] = u
                    cell["worst"] = (c["id"], tensor, s)
    return acc


def merge(cells):
    """Several (loss, dtype, reduction) cells of one implementation as one."""
    out = {"max": None, "worst": None, "verdicts": {}, "ulps": []}
    for cell in cells:
        for v, n in cell["verdicts"].items():
            out["verdicts"][v] = out["verdicts"].get(v, 0) + n
        out["ulps"] += cell["ulps"]
        if cell["max"] is not None and (out["max"] is None or cell["max"] > out["max"]):
            out["max"], out["worst"] = cell["max"], cell["worst"]
    return out


def accuracy_rows(acc, impls):
    """Rows loss x dtype; split by reduction where it matters: when some implementation's max
    error differs by more than a factor 2 (and 1 ULP) between reductions."""
    keys = sorted({k for impl in impls for k in acc[impl]},
                  key=lambda k: (k[0], DTYPES.index(k[1]) if k[1] in DTYPES else 9, k[1], k[2]))
    groups = {}
    for k in keys:
        groups.setdefault(k[:2], []).append(k[2])
    rows = []
    for (loss, dtype), reductions in groups.items():
        reductions = sorted(set(reductions))
        split = False
        for impl in impls:
            ms = [acc[impl][(loss, dtype, r)]["max"] for r in reductions
                  if (loss, dtype, r) in acc[impl] and acc[impl][(loss, dtype, r)]["max"] is not None]
            if len(ms) > 1 and max(ms) > 1 and max(ms) > 2 * min(ms):
                split = True
        for r in (reductions if split else [None]):
            cells = {}
            for impl in impls:
                parts = [acc[impl][(loss, dtype, x)] for x in reductions
                         if (r is None or x == r) and (loss, dtype, x) in acc[impl]]
                cells[impl] = merge(parts) if parts else None
            rows.append({"loss": loss, "dtype": dtype, "reduction": r, "cells": cells})
    return rows


def fmt_ulp(u):
    if u is None:
        return "-"
    if math.isinf(u):
        return "inf"
    if u == 0:
        return "0"
    if u < 10:
        return f"{u:.3g}"
    if u < 1e6:
        return f"{u:.0f}"
    return f"{u:.2e}"


def fails(cell):
    return sum(cell["verdicts"].get(v, 0) for v in ("fail", "error", "xpass"))


def write_worst_cases(out, rows, impls, corpus, golden_dir):
    """cases/<impl>/<loss>-<dtype>[-<reduction>].json for every cell with a worst case."""
    for row in rows:
        for impl in impls:
            cell = row["cells"][impl]
            if not cell or not cell["worst"]:
                continue
            case_id, tensor, s = cell["worst"]
            if case_id not in corpus:
                continue
            name = f"{row['loss']}-{row['dtype']}" + (f"-{row['reduction']}" if row["reduction"]
                                                       else "") + ".json"
            rel = os.path.join("cases", impl, name)
            if impl.startswith("torch"):
                replay = (f"lossbench eval {rel} --grad   # the exact values; PyTorch's own "
                          f"outputs for {case_id}: {golden_dir}/torch-2.2.2.jsonl")
            else:
                replay = f"lossbench eval {rel} --impl {impl} --grad"
            doc = dict(corpus[case_id])
            doc["id"] = case_id
            doc["note"] = (f"worst case of {impl_label(impl)} for {row['loss']} {row['dtype']}"
                           f": {fmt_ulp(cell['max'])} ULP in {tensor}")
            doc["meta"] = {"impl": impl, "tensor": tensor, "max_ulp": s.get("max_ulp"),
                           "budget": s.get("budget"), "worst": s.get("worst"), "replay": replay}
            os.makedirs(os.path.join(out, "cases", impl), exist_ok=True)
            with open(os.path.join(out, rel), "w") as f:
                json.dump(doc, f, indent=1)
                f.write("\n")
            cell["case_file"] = rel
            cell["replay"] = replay


# ------------------------------------------------------------------ plots

def plt_module():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams.update({"font.size": 8, "figure.dpi": 100, "savefig.bbox": "tight",
                         "svg.hashsalt": "lossbench", "path.simplify": True})
    return plt


def save(plt, fig, out, name, images):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    data = buf.getvalue()
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
    images[name] = base64.b64encode(data).decode()
    return name


ULP_BINS = [0, 0.5, 1, 2, 4, 16, 256, 65536, math.inf]
ULP_BIN_LABELS = ["0", "<=0.5", "<=1", "<=2", "<=4", "<=16", "<=256", "<=65536", ">65536"]


def bin_of(u):
    if u == 0:
        return 0
    for i, hi in enumerate(ULP_BINS[1:], 1):
        if u <= hi:
            return i
    return len(ULP_BINS) - 1


def plot_histograms(plt, out, acc, impl, images):
    by_loss = {}
    for (loss, _, _), cell in acc[impl].items():
        by_loss.setdefault(loss, []).extend(cell["ulps"])
    losses = sorted(loss for loss, us in by_loss.items() if us)
    if not losses:
        return None
    cols = 4
    rows = (len(losses) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(11, 1.9 * rows), squeeze=False, sharex=True)
    for ax in axes.flat[len(losses):]:
        ax.axis("off")
    for ax, loss in zip(axes.flat, losses):
        counts = [0] * len(ULP_BIN_LABELS)
        for u in by_loss[loss]:
            counts[bin_of(u)] += 1
        ax.bar(range(len(counts)), counts,
               color=["#2b8a3e" if i <= 2 else "#e8590c" for i in range(len(counts))])
        ax.set_title(loss, fontsize=8)
        ax.set_xticks(range(len(counts)))
        ax.set_xticklabels(ULP_BIN_LABELS, rotation=60, fontsize=6)
    fig.suptitle(f"{impl_label(impl)}: max ULP error per case and tensor (output, gradients), "
                 f"number of tensors per bin", fontsize=9)
    return save(plt, fig, out, f"ulp-histogram-{impl}.png", images)


def plot_heatmap(plt, out, acc, impl, images):
    cells = {}
    for (loss, dtype, _), cell in acc[impl].items():
        if cell["max"] is not None:
            cells[(loss, dtype)] = max(cells.get((loss, dtype), 0), cell["max"])
    if not cells:
        return None
    losses = sorted({k[0] for k in cells})
    dtypes = [d for d in DTYPES if any(k[1] == d for k in cells)]
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(dtypes), 0.6 + 0.28 * len(losses)))
    grid = [[math.nan] * len(dtypes) for _ in losses]
    for (loss, dtype), u in cells.items():
        if dtype in dtypes:
            grid[losses.index(loss)][dtypes.index(dtype)] = math.log2(1 + min(u, 2.0 ** 30))
    im = ax.imshow(grid, aspect="auto", cmap="YlOrRd", vmin=0, vmax=12)
    for (loss, dtype), u in cells.items():
        if dtype in dtypes:
            ax.text(dtypes.index(dtype), losses.index(loss), fmt_ulp(u), ha="center",
                    va="center", fontsize=7)
    ax.set_xticks(range(len(dtypes)))
    ax.set_xticklabels(dtypes)
    ax.set_yticks(range(len(losses)))
    ax.set_yticklabels(losses)
    ax.set_title(f"{impl_label(impl)}: max ULP error (blank: not measured)", fontsize=9)
    fig.colorbar(im, ax=ax, label="log2(1 + max ULP)")
    return save(plt, fig, out, f"max-ulp-{impl}.png", images)


def plot_throughput(plt, out, bench_rows, torch_rows, images):
    """One figure per size and direction: GB/s per loss, per implementation and dtype, with the
    speed of light of each benchmark as a black tick and PyTorch's GB/s where measured."""
    names = []
    groups = sorted({(r["size"], r["direction"]) for r in bench_rows if r.get("GBps")},
                    key=lambda g: (size_bytes(g[0]), g[1]))
    for size, direction in groups:
        rows = [r for r in bench_rows if (r["size"], r["direction"]) == (size, direction)
                and r.get("GBps")]
        series = sorted({(r["impl"], r["dtype"]) for r in rows},
                        key=lambda s: (impl_order(s[0]), s[1]))
        tseries = sorted({r["dtype"] for r in torch_rows
                          if (r["size"], r["direction"]) == (size, direction)})
        losses = sorted({r["loss"] for r in rows})
        nbar = len(series) + len(tseries)
        width = 0.8 / max(nbar, 1)
        fig, ax = plt.subplots(figsize=(max(7, 0.55 * len(losses) * max(nbar, 2) / 2), 3.6))
        colors = ["#1c7ed6", "#74c0fc", "#f59f00", "#ffd43b", "#7048e8", "#b197fc"]
        sol_label = "speed of light"
        for si, (impl, dtype) in enumerate(series):
            xs, ys, sols = [], [], []
            for li, loss in enumerate(losses):
                r = next((r for r in rows if (r["loss"], r["impl"], r["dtype"]) ==
                          (loss, impl, dtype)), None)
                if r:
                    xs.append(li + (si - nbar / 2 + 0.5) * width)
                    ys.append(r["GBps"])
                    sols.append(r.get("sol_GBps"))
            ax.bar(xs, ys, width, label=f"{impl_label(impl)} {dtype}",
                   color=colors[si % len(colors)])
            for x, s in zip(xs, sols):
                if s:
                    ax.hlines(s, x - width / 2, x + width / 2, colors="black", linewidth=1.5,
                              label=sol_label)
                    sol_label = "_nolegend_"
        for ti, dtype in enumerate(tseries):
            xs, ys = [], []
            for li, loss in enumerate(losses):
                r = next((r for r in torch_rows if (r["loss"], r["dtype"], r["size"],
                                                    r["direction"]) ==
                          (loss, dtype, size, direction)), None)
                if r:
                    xs.append(li + (len(series) + ti - nbar / 2 + 0.5) * width)
                    ys.append(r["torch_GBps"])
            ax.bar(xs, ys, width, label=f"PyTorch 2.2 CPU {dtype} (side by side run)",
                   color=["#e03131", "#ffa8a8"][ti % 2])
        ax.set_xticks(range(len(losses)))
        ax.set_xticklabels(losses, rotation=40, ha="right")
        ax.set_ylabel("GB/s (inputs read + gradient written)")
        ax.set_title(f"throughput, {size} per input tensor, {direction}, reduction mean",
                     fontsize=9)
        ax.legend(fontsize=6, ncol=2)
        names.append(save(plt, fig, out, f"throughput-{size}-{direction}.png", images))
    return names


def plot_speedup(plt, out, torch_rows, images):
    if not torch_rows:
        return None
    combos = sorted({(r["dtype"], r["size"], r["direction"]) for r in torch_rows},
                    key=lambda c: (c[0], size_bytes(c[1]), c[2]))
    losses = sorted({r["loss"] for r in torch_rows})
    width = 0.8 / len(combos)
    fig, ax = plt.subplots(figsize=(max(7, 0.5 * len(losses) * len(combos) / 2), 3.6))
    for ci, combo in enumerate(combos):
        xs, ys = [], []
        for li, loss in enumerate(losses):
            r = next((r for r in torch_rows if (r["loss"], r["dtype"], r["size"],
                                                r["direction"]) == (loss,) + combo), None)
            if r:
                xs.append(li + (ci - len(combos) / 2 + 0.5) * width)
                ys.append(r["ratio_torch_over_lossbench"])
        ax.bar(xs, ys, width, label=" ".join(combo))
    ax.axhline(1, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks(range(len(losses)))
    ax.set_xticklabels(losses, rotation=40, ha="right")
    ax.set_ylabel("PyTorch time / lossbench time (> 1: lossbench faster)")
    ax.set_title("speed-up of lossbench cpu against PyTorch 2.2 CPU (same run, interleaved)",
                 fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    return save(plt, fig, out, "speedup-vs-torch.png", images)


def size_bytes(s):
    for suf, mul in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("B", 1)):
        if s.endswith(suf) and s[:-len(suf)].isdigit():
            return int(s[:-len(suf)]) * mul
    return 0


# ------------------------------------------------------------------ the documents

class Doc:
    """Writes the same content as Markdown and as HTML."""

    def __init__(self):
        self.md, self.html = [], []

    def h(self, level, text, anchor=None):
        self.md.append("#" * level + " " + text + "\n")
        a = f' id="{anchor}"' if anchor else ""
        self.html.append(f"<h{level}{a}>{html.escape(text)}</h{level}>")

    def p(self, text, md=None):
        self.md.append((md if md is not None else text) + "\n")
        self.html.append(f"<p>{html.escape(text)}</p>")

    def image(self, name, images, alt):
        self.md.append(f"![{alt}]({name})\n")
        self.html.append(f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,'
                         f'{images[name]}"></p>')

    def table(self, table_id, header, rows):
        """rows: lists of cells; a cell is a str or (text, link, title, css class)."""
        def md_cell(c):
            if isinstance(c, tuple):
                text, link = c[0], c[1]
                return f"[{text}]({link})" if link else text
            return c
        self.md.append("| " + " | ".join(header) + " |")
        self.md.append("|" + "---|" * len(header))
        for r in rows:
            self.md.append("| " + " | ".join(md_cell(c).replace("|", "\\|") for c in r) + " |")
        self.md.append("")
        out = [f'<table id="{table_id}"><thead><tr>']
        out += [f"<th>{html.escape(h)}</th>" for h in header]
        out.append("</tr></thead><tbody>")
        for r in rows:
            out.append("<tr>")
            for c in r:
                if isinstance(c, tuple):
                    text, link, title, css = (c + (None, None, None))[:4]
                    t = f' title="{html.escape(title)}"' if title else ""
                    k = f' class="{css}"' if css else ""
                    inner = (f'<a href="{html.escape(link)}">{html.escape(text)}</a>' if link
                             else html.escape(text))
                    out.append(f"<td{t}{k}>{inner}</td>")
                else:
                    out.append(f"<td>{html.escape(c)}</td>")
            out.append("</tr>")
        out.append("</tbody></table>")
        self.html.append("".join(out))


HTML_HEAD = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; max-width: 1200px; margin: 1em auto; padding: 0 1em; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 13px; }}
th, td {{ border: 1px solid #ccc; padding: 2px 6px; text-align: right; }}
th {{ background: #f1f3f5; }}
td:first-child, th:first-child {{ text-align: left; }}
td.fail {{ background: #ffe3e3; }}
td.none {{ color: #868e96; }}
img {{ max-width: 100%; }}
#image-check {{ color: #868e96; font-size: 11px; }}
</style>
<script>
// Counts the images that loaded, for tests/report/report_test.sh (headless Chromium).
window.addEventListener("load", function () {{
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) {{ return i.complete && i.naturalWidth > 0; }}).length;
  var el = document.getElementById("image-check");
  el.setAttribute("data-loaded", ok);
  el.setAttribute("data-total", imgs.length);
  el.textContent = "images loaded: " + ok + "/" + imgs.length;
}});
</script></head><body>
"""


def context_rows(source_id, path, kind, fields):
    rows = []
    for k, v in fields.items():
        if k in ("caches", "corpus", "executable") or isinstance(v, (dict, list)):
            continue
        rows.append([source_id, kind, os.path.basename(path), k, str(v)])
    return rows


def build(args):
    checks = [read_check(p) for p in args.check]
    benches = [read_bench(p) for p in args.bench]
    torch_benches = [read_torch_bench(p) for p in args.torch_bench]
    impls = sorted({d["impl"] for d in checks}, key=impl_order)
    need(len(impls) == len(checks), ", ".join(args.check),
         "two check files score the same implementation")

    golden = args.golden
    if not golden:
        for d in checks:
            for cand in (d.get("corpus"), os.path.join(ROOT, d.get("corpus") or "")):
                if cand and os.path.exists(os.path.join(cand, "manifest.json")):
                    golden = cand
                    break
            if golden:
                break
    golden = golden or os.path.join(ROOT, "golden", "corpus")
    corpus = read_corpus(golden) if checks else {}

    out = args.out.rstrip("/")
    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        summary = render(args, tmp, checks, benches, torch_benches, impls, corpus, golden)
        old = out + ".old"
        shutil.rmtree(old, ignore_errors=True)
        if os.path.exists(out):
            os.rename(out, old)
        os.rename(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary


def render(args, out, checks, benches, torch_benches, impls, corpus, golden):
    plt = plt_module()
    images = {}
    doc = Doc()
    title = args.title or "lossbench report"
    doc.h(1, title)
    generated = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    doc.p(f"Generated {generated} by reports/report.py from the files listed under "
          f"\"Context\". Every table and figure names the input it comes from ([A], [B], ...); "
          f"nothing here was not measured in those runs.")

    # Sources and their context.
    sources, ctx_rows = {}, []
    letter = iter("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    for d in checks:
        sid = sources.setdefault(d["_path"], next(letter))
        fields = {"impl": d["impl"], "version": d.get("version") or "not recorded",
                  "corpus": d.get("corpus"), "summary": ", ".join(
                      f"{v} {k}" for k, v in d["summary"].items() if v)}
        fields.update(d.get("context") or {"context": "not recorded (older lossbench check)"})
        for k, v in (d.get("results_header") or {}).items():
            fields[f"results {k}"] = v
        ctx_rows += context_rows(sid, d["_path"], "check", fields)
    for b in benches:
        sid = sources.setdefault(b["_path"], next(letter))
        ctx_rows += context_rows(sid, b["_path"], "bench", b["context"])
    for t in torch_benches:
        sid = sources.setdefault(t["_path"], next(letter))
        ctx_rows += context_rows(sid, t["_path"], "PyTorch side by side", t["context"])

    summary_lines = []

    # Accuracy.
    doc.h(2, "Accuracy", "accuracy-section")
    if not checks:
        doc.p(f"Accuracy: {NOT_MEASURED}.")
    else:
        src = ", ".join(f"[{sources[d['_path']]}] {impl_label(d['impl'])}" for d in checks)
        doc.p(f"Max error in ULPs of the output and every gradient over the golden corpus "
              f"({golden}), against the exact values; rows loss x dtype, split by reduction "
              f"where it matters. Each number links the case where it occurs, with the command "
              f"that replays it. Red: some case of the cell failed its budget. Sources: {src}.")
        acc = accuracy(checks)
        rows = accuracy_rows(acc, impls)
        write_worst_cases(out, rows, impls, corpus, golden)
        table = []
        for row in rows:
            cells = [row["loss"], row["dtype"], row["reduction"] or "all"]
            for impl in impls:
                cell = row["cells"][impl]
                if cell is None:
                    cells.append(("not in corpus", None, None, "none"))
                elif cell["max"] is None:
                    v = ", ".join(f"{n} {k}" for k, n in sorted(cell["verdicts"].items()))
                    unsupported = set(cell["verdicts"]) == {"unsupported"}
                    cells.append(("unsupported" if unsupported else NOT_MEASURED, None, v,
                                  "none"))
                else:
                    nf = fails(cell)
                    text = fmt_ulp(cell["max"]) + (f" ({nf} fail)" if nf else "")
                    v = ", ".join(f"{n} {k}" for k, n in sorted(cell["verdicts"].items()))
                    cells.append((text, cell.get("case_file"),
                                  f"{v}; worst: {cell['worst'][0]} {cell['worst'][1]}; "
                                  f"{cell.get('replay', '')}", "fail" if nf else None))
            table.append(cells)
        doc.table("accuracy", ["loss", "dtype", "reduction"] +
                  [f"{impl_label(i)} [{sources[d['_path']]}]" for i in impls
                   for d in checks if d["impl"] == i], table)
        doc.h(3, "Verdicts")
        verdicts = ["pass", "fail", "error", "unsupported", "xfail", "xpass"]
        vt = []
        for d in checks:
            vt.append([impl_label(d["impl"]), d.get("version") or "not recorded"] +
                      [str(d["summary"].get(v, 0)) for v in verdicts])
            summary_lines.append(f"{impl_label(d['impl']):18} " + ", ".join(
                f"{d['summary'].get(v, 0)} {v}" for v in verdicts if d["summary"].get(v, 0)))
        doc.table("verdicts", ["implementation", "version"] + verdicts, vt)
        doc.h(3, "Max ULP heat maps")
        for impl in impls:
            name = plot_heatmap(plt, out, acc, impl, images)
            if name:
                doc.image(name, images, f"max ULP heat map, {impl_label(impl)}")
            else:
                doc.p(f"{impl_label(impl)}: {NOT_MEASURED} (no scored case).")
        doc.h(3, "ULP error histograms")
        for impl in impls:
            name = plot_histograms(plt, out, acc, impl, images)
            if name:
                doc.image(name, images, f"ULP error histograms, {impl_label(impl)}")
            else:
                doc.p(f"{impl_label(impl)}: {NOT_MEASURED} (no scored case).")
        # The terminal's summary table: max ULP per loss (all dtypes, reductions, tensors).
        width = max(len(impl_label(i)) for i in impls) + 2
        summary_lines.append(f"{'max ULP':34}" + "".join(f"{impl_label(i):>{width}}"
                                                          for i in impls))
        for loss in sorted({k[0] for i in impls for k in acc[i]}):
            vals = []
            for impl in impls:
                ms = [c["max"] for k, c in acc[impl].items() if k[0] == loss and c["max"] is not None]
                vals.append(fmt_ulp(max(ms)) if ms else "-")
            summary_lines.append(f"{loss:34}" + "".join(f"{v:>{width}}" for v in vals))
        worst = []
        for impl in impls:
            ms = [(c["max"], k) for k, c in acc[impl].items() if c["max"] is not None]
            if ms:
                m, k = max(ms)
                worst.append(f"{impl_label(impl)}: max {fmt_ulp(m)} ULP ({k[0]} {k[1]})")
        summary_lines += worst

    # Throughput.
    doc.h(2, "Throughput", "throughput-section")
    bench_rows = [dict(r, source=sources[b["_path"]]) for b in benches for r in b["rows"]]
    torch_rows = [dict(r, source=sources[t["_path"]]) for t in torch_benches for r in t["rows"]]
    if not bench_rows:
        doc.p(f"Throughput of lossbench: {NOT_MEASURED}.")
    else:
        srcs = ", ".join(f"[{sources[b['_path']]}]" for b in benches)
        doc.p(f"Median over repetitions of Google Benchmark runs {srcs}. GB/s on the minimal "
              f"byte model (inputs read + gradient written); % SoL = speed-of-light time / "
              f"measured time, the speed of light being the larger of the memory time at the "
              f"read bandwidth measured in the same run (roof) and the transcendental floor "
              f"(benchmarks/README.md). The black ticks in the figures are each benchmark's "
              f"speed of light in GB/s.")
        for name in plot_throughput(plt, out, bench_rows, torch_rows, images):
            doc.image(name, images, name[:-4])
        bt = []
        for r in bench_rows:
            if r.get("time_us") is None:
                bt.append([r["loss"], r["impl"], r["dtype"], r["size"], r["direction"],
                           ("error: " + (r["error"] or ""), None, None, "fail"), "", "", "", "",
                           "", r["source"]])
                continue
            bt.append([r["loss"], r["impl"], r["dtype"], r["size"], r["direction"],
                       f"{r['time_us']:.2f}", f"{r['GBps']:.2f}" if r["GBps"] else "-",
                       f"{r['pct_sol']:.1f}" if r["pct_sol"] is not None else "-",
                       f"{r['sol_GBps']:.1f}" if r["sol_GBps"] else "-",
                       f"{r['roof_GBps']:.1f}" if r["roof_GBps"] else "-",
                       fmt_ulp(r["max_ulp"]), r["source"]])
        doc.table("throughput", ["loss", "impl", "dtype", "size", "direction", "time (us)",
                                 "GB/s", "% SoL", "SoL GB/s", "roof GB/s", "max ULP (check)",
                                 "source"], bt)
        sols = [r["pct_sol"] for r in bench_rows if r.get("pct_sol")]
        if sols:
            summary_lines.append(f"throughput: {len(sols)} benchmarks, median "
                                 f"{statistics.median(sols):.1f}% of the speed of light")

    doc.h(2, "Speed-up against PyTorch", "speedup-section")
    if not torch_rows:
        doc.p(f"PyTorch side by side: {NOT_MEASURED}.")
    else:
        srcs = ", ".join(f"[{sources[t['_path']]}]" for t in torch_benches)
        doc.p(f"lossbench cpu (through its C ABI, ctypes) and torch.nn.functional on the same "
              f"buffers, same threads, interleaved repetitions, medians {srcs}.")
        name = plot_speedup(plt, out, torch_rows, images)
        doc.image(name, images, "speed-up against PyTorch")
        st = [[r["loss"], r["dtype"], r["size"], r["direction"],
               f"{r['lossbench_median_s'] * 1e6:.1f}", f"{r['torch_median_s'] * 1e6:.1f}",
               f"{r['lossbench_GBps']:.2f}", f"{r['torch_GBps']:.2f}",
               f"{r['ratio_torch_over_lossbench']:.2f}", r["source"]] for r in torch_rows]
        doc.table("speedup", ["loss", "dtype", "size", "direction", "lossbench (us)",
                              "PyTorch (us)", "lossbench GB/s", "PyTorch GB/s",
                              "PyTorch / lossbench", "source"], st)
        ratios = [r["ratio_torch_over_lossbench"] for r in torch_rows
                  if r["ratio_torch_over_lossbench"] > 0]
        geo = math.exp(sum(math.log(x) for x in ratios) / len(ratios))
        summary_lines.append(f"vs PyTorch 2.2 CPU: geometric mean speed-up {geo:.2f}x over "
                             f"{len(ratios)} cases")

    doc.h(2, "Context", "context-section")
    if ctx_rows:
        doc.table("context", ["source", "kind", "file", "key", "value"], ctx_rows)
    else:
        doc.p(f"No input: {NOT_MEASURED}.")

    with open(os.path.join(out, "README.md"), "w") as f:
        f.write("\n".join(doc.md) + "\n")
    with open(os.path.join(out, "index.html"), "w") as f:
        f.write(HTML_HEAD.format(title=html.escape(title)))
        f.write("\n".join(doc.html))
        f.write('\n<p id="image-check">images not checked (scripts off)</p>\n</body></html>\n')
    return summary_lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--check", action="append", default=[], help="lossbench check --json FILE")
    ap.add_argument("--bench", action="append", default=[], help="benchmarks/run.sh --json FILE")
    ap.add_argument("--torch-bench", action="append", default=[],
                    help="benchmarks/torch_side_by_side.py --json FILE")
    ap.add_argument("--golden", default=None, help="corpus folder (worst cases are copied)")
    ap.add_argument("--title", default=None)
    ap.add_argument("--summary", action="store_true", help="print a summary table")
    args = ap.parse_args()
    if not (args.check or args.bench or args.torch_bench):
        print("report: give at least one --check, --bench or --torch-bench file",
              file=sys.stderr)
        return 2
    try:
        lines = build(args)
    except BadInput as e:
        print(f"report: {e}", file=sys.stderr)
        return 2
    if args.summary:
        for line in lines:
            print("  " + line)
    print(f"report: {args.out}/README.md, {args.out}/index.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
