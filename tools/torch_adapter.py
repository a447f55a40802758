#!/usr/bin/env python3
"""Run the golden corpus through PyTorch (CPU) and write a results file for `lossbench check
--results` (docs/scorer.md):

    python tools/torch_adapter.py --golden golden/corpus --out torch.results.jsonl
    lossbench check --impl torch --results torch.results.jsonl --golden golden/corpus

One JSON line per case: {"id", "status": "ok" | "error" | "unsupported", "output": {"dtype",
"shape", "data": [hex]}, "grad": {name: {...}}, "error": {"class", "message"}}, after a
{"header": {...}} line. Built for torch 2.2.2 (scripts/torch-venv.sh); other versions run but
the header records which one produced the file.
"""
import argparse
import fnmatch
import json
import math
import os
import sys
from fractions import Fraction

import torch
import torch.nn.functional as F

DTYPES = {"float64": torch.float64, "float32": torch.float32, "float16": torch.float16,
          "bfloat16": torch.bfloat16, "int64": torch.int64}
# (precision, emin, emax) of the floating formats.
FORMATS = {"float64": (53, -1022, 1023), "float32": (24, -126, 127), "float16": (11, -14, 15),
           "bfloat16": (8, -126, 127)}


def round_fraction(q, dtype):
    """The rational q correctly rounded (ties to even) to dtype, as a Python float."""
    p, emin, emax = FORMATS[dtype]
    if q == 0:
        return 0.0
    sign = -1.0 if q < 0 else 1.0
    a = abs(q)
    e = a.numerator.bit_length() - a.denominator.bit_length()
    if Fraction(2) ** e > a:
        e -= 1
    e = max(e, emin)
    scale = Fraction(2) ** (p - 1 - e)
    n = round(a * scale)  # Fraction.__round__: ties to even
    r = Fraction(n) / scale
    if r >= Fraction(2) ** (emax + 1):
        return sign * math.inf
    return sign * float(r)


def parse_element(v, dtype):
    if isinstance(v, bool):
        raise ValueError("boolean element")
    if dtype == "int64":
        return int(v)
    if isinstance(v, (int, float)):
        return round_fraction(Fraction(v), dtype)
    s = v.strip().lower()
    if s in ("nan", "+nan", "-nan"):
        return math.nan
    if s in ("inf", "+inf", "infinity"):
        return math.inf
    if s in ("-inf", "-infinity"):
        return -math.inf
    if "0x" in s:
        return float.fromhex(s)  # exact in the dtype by the case format's rule
    return round_fraction(Fraction(s), dtype) if s.lstrip("+-") not in ("0", "0.0") else float(s)


def make_tensor(t):
    dtype = t["dtype"]
    data = [parse_element(v, dtype) for v in t["data"]]
    if dtype == "int64":
        return torch.tensor(data, dtype=torch.int64).reshape(t["shape"])
    # Through float64, which holds every value of every format exactly.
    return torch.tensor(data, dtype=torch.float64).reshape(t["shape"]).to(DTYPES[dtype])


def hexes(t):
    return [float(v).hex() if math.isfinite(v) else ("nan" if math.isnan(v) else
                                                       ("inf" if v > 0 else "-inf"))
            for v in t.detach().to(torch.float64).reshape(-1).tolist()]


def tensor_json(t):
    name = {v: k for k, v in DTYPES.items()}[t.dtype]
    return {"dtype": name, "shape": list(t.shape), "data": hexes(t)}


def param_value(v):
    if isinstance(v, str):
        s = v.strip().lower()
        try:
            if "0x" in s:
                return float.fromhex(s)
            if s in ("nan", "inf", "-inf"):
                return float(s)
            return float(Fraction(s))
        except (ValueError, ZeroDivisionError):
            return v
    return v


def error_class(e):
    msg = str(e)
    if isinstance(e, IndexError) or "out of bounds" in msg or "out of range" in msg:
        return "index_error"
    if isinstance(e, TypeError) or "dtype" in msg.lower() or "expected scalar type" in msg:
        return "type_error"
    if "size" in msg or "shape" in msg or "dimension" in msg:
        return "shape_error"
    return "value_error"


def run_case(line):
    doc = line["case"]
    loss = doc["loss"]
    fn = getattr(F, loss, None)
    if fn is None:
        return {"status": "unsupported", "error": {"message": "no torch.nn.functional." + loss}}
    inputs = {k: make_tensor(v) for k, v in doc.get("inputs", {}).items()}
    params = {k: param_value(v) for k, v in doc.get("params", {}).items()}
    if loss == "triplet_margin_with_distance_loss":
        d = params.pop("distance_function", None)
        if d == "cosine":
            params["distance_function"] = lambda a, b: 1.0 - F.cosine_similarity(a, b)
        elif d not in (None, "pairwise_distance"):
            return {"status": "unsupported", "error": {"message": "distance " + str(d)}}
    grad_names = list(line.get("expected", {}).get("grad", {}).keys())
    for n in grad_names:
        if n in inputs and inputs[n].is_floating_point():
            inputs[n].requires_grad_(True)
    try:
        out = fn(**inputs, **params, reduction=doc.get("reduction", "mean"))
    except Exception as e:  # noqa: BLE001 - every torch error is a result
        if "not implemented for" in str(e):
            return {"status": "unsupported", "error": {"message": str(e)}}
        return {"status": "error", "error": {"class": error_class(e), "message": str(e)}}
    rec = {"status": "ok", "output": tensor_json(out)}
    if grad_names and out.requires_grad:
        if "grad_output" in doc:
            go = make_tensor(doc["grad_output"])
        else:
            go = torch.ones_like(out)
        try:
            wanted = [inputs[n] for n in grad_names]
            grads = torch.autograd.grad(out, wanted, go, allow_unused=True)
            rec["backward"] = {"status": "ok"}
            rec["grad"] = {n: tensor_json(g if g is not None else torch.zeros_like(inputs[n]))
                           for n, g in zip(grad_names, grads)}
        except Exception as e:  # noqa: BLE001
            status = "unsupported" if "not implemented for" in str(e) else "error"
            rec["backward"] = {"status": status, "error": {"message": str(e)}}
    return rec


def corpus_files(golden):
    manifest = os.path.join(golden, "manifest.json")
    if os.path.exists(manifest):
        with open(manifest) as f:
            m = json.load(f)
        return [os.path.join(golden, x if isinstance(x, str) else x["name"]) for x in m["files"]]
    return sorted(os.path.join(golden, n) for n in os.listdir(golden)
                  if n.endswith(".jsonl") and not n.startswith("torch-"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--golden", default="golden/corpus")
    ap.add_argument("--out", default="-")
    ap.add_argument("--filter", default="*", help="glob over case ids")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = sys.stdout if args.out == "-" else open(args.out, "w")
    out.write(json.dumps({"header": {"impl": "torch", "version": torch.__version__,
                                      "device": "cpu"}}) + "\n")
    for path in corpus_files(args.golden):
        with open(path) as f:
            for text in f:
                if not text.strip():
                    continue
                line = json.loads(text)
                if not fnmatch.fnmatchcase(line["id"], args.filter):
                    continue
                try:
                    rec = run_case(line)
                except Exception as e:  # noqa: BLE001 - the adapter itself must not stop
                    rec = {"status": "internal_error", "error": {"message": repr(e)}}
                rec = {"id": line["id"], **rec}
                out.write(json.dumps(rec) + "\n")
    if out is not sys.stdout:
        out.close()


if __name__ == "__main__":
    main()
