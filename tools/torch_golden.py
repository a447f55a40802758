#!/usr/bin/env python3
"""Run every case of the golden corpus through PyTorch (CPU) and record what it returns.

For each case of golden/corpus/<group>.jsonl: torch.nn.functional.<loss> forward and backward
in the case's dtype (the gradients of the inputs the corpus has expected gradients for, with the
case's grad_output or ones), on the CPU with one thread. Writes one JSON line per case to
golden/corpus/torch-<version>.jsonl, after a header line with torch's exact version and the
SHA-256 of the corpus files it read:

  {"header": {"torch_version": "2.2.2+cpu", "corpus": {"smoke.jsonl": "<sha256>", ...}, ...}}
  {"id": "l1_loss/smoke/0000", "status": "ok", "output": {"dtype", "shape", "data": [hex]},
   "grad": {"input": {...}}}
  {"id": ..., "status": "error", "error": {"type": "ValueError", "class": "value_error",
   "message": "..."}}
  {"id": ..., "status": "unsupported", "error": {...}}     # dtype not implemented on the CPU

Usage: tools/torch_golden.py [--dir golden/corpus] [--out FILE] [--loss ID ...] [--group G ...]
Needs torch (scripts/torch-venv.sh makes .venv-torch with torch 2.2.2); nothing of lossbench.
"""
import argparse
import hashlib
import json
import math
import os
import platform
import sys

import torch
import torch.nn.functional as F

DTYPES = {"float64": torch.float64, "float32": torch.float32, "float16": torch.float16,
          "bfloat16": torch.bfloat16, "int64": torch.int64}
NAMES = {v: k for k, v in DTYPES.items()}


def parse_float(s):
    if isinstance(s, (int, float)):
        return float(s)
    if s in ("nan", "NaN", "-nan"):
        return math.nan
    if s in ("inf", "+inf", "Infinity"):
        return math.inf
    if s in ("-inf", "-Infinity"):
        return -math.inf
    return float.fromhex(s) if "x" in s.lower() else float(s)


def hexs(v):
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v.hex()


def tensor(t):
    shape = t["shape"]
    if t["dtype"] == "int64":
        return torch.tensor(t["data"], dtype=torch.int64).reshape(shape)
    # Every value is exact in its dtype, so going through float64 rounds nothing.
    vals = [parse_float(x) for x in t["data"]]
    return torch.tensor(vals, dtype=torch.float64).reshape(shape).to(DTYPES[t["dtype"]])


def out_json(t):
    return {"dtype": NAMES.get(t.dtype, str(t.dtype)), "shape": list(t.shape),
            "data": [hexs(v) for v in t.detach().double().reshape(-1).tolist()]}


def params_for(case):
    params = {}
    for k, v in case.get("params", {}).items():
        if isinstance(v, str) and k != "distance_function":
            v = parse_float(v)
        params[k] = v
    if case["loss"] == "triplet_margin_with_distance_loss":
        d = params.get("distance_function")
        if d == "pairwise_distance":
            params["distance_function"] = F.pairwise_distance
        elif d == "cosine":
            params["distance_function"] = lambda a, b: 1.0 - F.cosine_similarity(a, b)
    return params


def classify(exc):
    """(status, error class) of an exception: the class names lossbench's ErrorKind uses."""
    msg = str(exc)
    if isinstance(exc, NotImplementedError) or "not implemented for" in msg:
        return "unsupported", "type_error"
    if isinstance(exc, ValueError):
        return "error", "value_error"
    if isinstance(exc, IndexError):
        return "error", "index_error"
    if isinstance(exc, TypeError):
        return "error", "type_error"
    low = msg.lower()
    if any(s in low for s in ("out of bounds", "out of range", "target ", "index")):
        return "error", "index_error"
    if any(s in low for s in ("size", "shape", "dimension", "must match", "batch_size", "expected")):
        return "error", "shape_error"
    if "dtype" in low or "scalar type" in low:
        return "error", "type_error"
    return "error", "value_error"


def run_case(line):
    case = line["case"]
    diff = list(line.get("expected", {}).get("grad", {}).keys())
    ins = {k: tensor(t) for k, t in case["inputs"].items()}
    for k in diff:
        ins[k].requires_grad_(True)
    fn = getattr(F, case["loss"])
    rec = {"id": line["id"]}
    try:
        out = fn(**ins, **params_for(case), reduction=case.get("reduction", "mean"))
    except Exception as e:  # noqa: BLE001 - every torch failure is recorded
        status, cls = classify(e)
        rec.update(status=status, error={"type": type(e).__name__, "class": cls, "message": str(e)})
        return rec
    rec["status"] = "ok"
    rec["output"] = out_json(out)
    if diff:
        go = tensor(case["grad_output"]) if "grad_output" in case else torch.ones_like(out)
        try:
            gs = torch.autograd.grad(out, [ins[k] for k in diff], grad_outputs=go.to(out.dtype),
                                     allow_unused=True)
            rec["grad"] = {k: out_json(g) for k, g in zip(diff, gs) if g is not None}
        except Exception as e:  # noqa: BLE001
            rec["grad_error"] = f"{type(e).__name__}: {e}"
    return rec


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default="golden/corpus")
    ap.add_argument("--out")
    ap.add_argument("--loss", nargs="*")
    ap.add_argument("--group", nargs="*")
    args = ap.parse_args()
    torch.set_num_threads(1)
    version = torch.__version__
    out_path = args.out or os.path.join(args.dir, f"torch-{version.split('+')[0]}.jsonl")
    manifest = json.load(open(os.path.join(args.dir, "manifest.json")))
    header = {"torch_version": version, "python": platform.python_version(),
              "machine": platform.machine(), "device": "cpu", "threads": torch.get_num_threads(),
              "corpus_schema_version": manifest["schema_version"],
              "corpus_generator_version": manifest["generator_version"], "corpus": {}}
    counts = {}
    with open(out_path, "w") as out:
        lines = []
        for f in manifest["files"]:
            path = os.path.join(args.dir, f["name"])
            header["corpus"][f["name"]] = hashlib.sha256(open(path, "rb").read()).hexdigest()
            if args.group and f["group"] not in args.group:
                continue
            with open(path) as fh:
                lines += [json.loads(x) for x in fh if x.strip()]
        out.write(json.dumps({"header": header}) + "\n")
        for line in lines:
            if args.loss and line["case"]["loss"] not in args.loss:
                continue
            rec = run_case(line)
            counts[rec["status"]] = counts.get(rec["status"], 0) + 1
            out.write(json.dumps(rec, separators=(",", ":")) + "\n")
    print(f"torch {version}: {sum(counts.values())} cases -> {out_path}: {counts}")


if __name__ == "__main__":
    sys.exit(main())
