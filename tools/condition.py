#!/usr/bin/env python3
"""Errors of an implementation's outputs against their condition numbers.

The relative condition number of a loss value f at its inputs x is

    kappa = sum_i |df/dx_i| |x_i| / |f|

over the floating inputs the loss is differentiated in (PyTorch's differentiable inputs, whose
exact gradients the corpus stores). A result within a few ULPs is what a well-conditioned case
(kappa small) allows; an ill-conditioned one (a sum that cancels, a value near 0) can lose many
ULPs to rounding in its inputs' own last places, and the scorer's ULP error of such a case says
little about the implementation.

For a reduced output the corpus' gradient is d(u f)/dx for the case's upstream u, so kappa is
sum |g_i x_i| / (|u| |f|). For reduction 'none' the gradient of element j is only separable
when every differentiated input has the output's shape and the loss is elementwise (each output
element depends on the same element of each input): then kappa_j = sum_k |g_kj x_kj| / (|u_j|
|f_j|), and the case's kappa is the largest. Other 'none' cases have no kappa here.

Usage: condition.py --golden DIR --check CHECK.json [--dtype float64] [--below 1024] [--ulp 2]
                    [--json OUT] [--allow N]

Prints, per loss, the cases with kappa below the bound, their largest forward ULP error and how
many exceed --ulp; with --allow N, exits 1 when more than N do (a ratchet for CI).
"""
import argparse
import json
import math
import os
import sys

ELEMENTWISE = {
    "l1_loss", "mse_loss", "huber_loss", "smooth_l1_loss", "soft_margin_loss",
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div", "poisson_nll_loss",
    "hinge_embedding_loss", "margin_ranking_loss", "gaussian_nll_loss",
}


def fail(msg):
    print(f"condition.py: error: {msg}", file=sys.stderr)
    sys.exit(2)


def value(s):
    if isinstance(s, (int, float)):
        return float(s)
    if s in ("nan", "inf", "-inf"):
        return float(s)
    try:
        return float.fromhex(s)
    except ValueError:
        return float(s)


def kappa(case, expected):
    """The case's condition number (float), or None where it is not defined here."""
    c = case["case"]
    out = expected["output"]
    grads = expected.get("grad") or {}
    if not grads:
        return None
    f = [value(h) + value(lo) for h, lo in zip(out["hi"], out.get("lo", ["0"] * len(out["hi"])))]
    if any(not math.isfinite(v) for v in f):
        return None
    n_out = len(f)
    if "grad_output" in c:
        up = [value(v) for v in c["grad_output"]["data"]]
    else:
        up = [1.0] * n_out
    if len(up) == 1 and n_out > 1:
        up = up * n_out
    if any(u == 0 or not math.isfinite(u) for u in up):
        return None
    reduced = c.get("reduction", "mean") != "none"
    if reduced:
        total = 0.0
        for name, g in grads.items():
            x = [value(v) for v in c["inputs"][name]["data"]]
            gv = [value(v) for v in g["hi"]]
            if len(x) != len(gv):
                return None
            for a, b in zip(x, gv):
                t = abs(a * b)
                if not math.isfinite(t):
                    return None
                total += t
        if f[0] == 0:
            return math.inf if total > 0 else None
        return total / (abs(up[0]) * abs(f[0]))
    if c["loss"] not in ELEMENTWISE:
        return None
    worst = 0.0
    per = [0.0] * n_out
    for name, g in grads.items():
        x = [value(v) for v in c["inputs"][name]["data"]]
        gv = [value(v) for v in g["hi"]]
        if len(x) != n_out or len(gv) != n_out:
            return None  # broadcast: not separable here
        for j in range(n_out):
            t = abs(x[j] * gv[j])
            if not math.isfinite(t):
                return None
            per[j] += t
    for j in range(n_out):
        if f[j] == 0:
            if per[j] > 0:
                return math.inf
            continue
        worst = max(worst, per[j] / (abs(up[j]) * abs(f[j])))
    return worst


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--golden", required=True, help="corpus directory (manifest.json, *.jsonl)")
    ap.add_argument("--check", required=True, help="lossbench check --json output")
    ap.add_argument("--dtype", default="float64")
    ap.add_argument("--below", type=float, default=1024.0, help="condition number bound (2^10)")
    ap.add_argument("--ulp", type=float, default=2.0, help="error allowed below the bound")
    ap.add_argument("--json", help="write the per-case table here")
    ap.add_argument("--allow", type=int, default=None,
                    help="exit 1 when more than this many cases exceed --ulp")
    a = ap.parse_args()

    manifest = os.path.join(a.golden, "manifest.json")
    if not os.path.isfile(manifest):
        fail(f"{a.golden}: no manifest.json (not a corpus directory)")
    try:
        with open(a.check) as fh:
            check = json.load(fh)
        scores = {c["id"]: c for c in check["cases"]}
    except (OSError, ValueError, KeyError, TypeError) as e:
        fail(f"{a.check}: not the output of lossbench check --json ({e})")
    files = [f for f in sorted(os.listdir(a.golden))
             if f.endswith(".jsonl") and not f.startswith("torch-")]
    rows = []
    for fn in files:
        with open(os.path.join(a.golden, fn)) as fh:
            for ln, line in enumerate(fh, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    case = json.loads(line)
                except ValueError as e:
                    fail(f"{fn}:{ln}: {e}")
                exp = case.get("expected")
                if exp is None or exp.get("output", {}).get("dtype") != a.dtype:
                    continue
                sc = scores.get(case["id"])
                if sc is None or "output" not in sc.get("scores", {}):
                    continue
                k = kappa(case, exp)
                ulp = value(sc["scores"]["output"]["max_ulp"])
                rows.append({"id": case["id"], "loss": case["case"]["loss"], "kappa": k,
                             "ulp": ulp, "verdict": sc.get("verdict")})
    if not rows:
        fail(f"no {a.dtype} case of {a.golden} has a score in {a.check}")

    by_loss = {}
    for r in rows:
        by_loss.setdefault(r["loss"], []).append(r)
    print(f"{check.get('impl', '?')}: {a.dtype} forward outputs, condition number kappa "
          f"(differentiable inputs) below {a.below:g}: error within {a.ulp:g} ULP?")
    print(f"{'loss':36} {'cases':>5} {'kappa<':>6} {'max ULP':>9} {'>ulp':>5} {'no kappa':>8}")
    over = []
    for loss in sorted(by_loss):
        rs = by_loss[loss]
        well = [r for r in rs if r["kappa"] is not None and r["kappa"] < a.below]
        unknown = sum(1 for r in rs if r["kappa"] is None)
        bad = [r for r in well if not (r["ulp"] <= a.ulp)]
        over += bad
        mx = max((r["ulp"] for r in well), default=float("nan"))
        print(f"{loss:36} {len(rs):5d} {len(well):6d} {mx:9.3g} {len(bad):5d} {unknown:8d}")
    well_all = [r for r in rows if r["kappa"] is not None and r["kappa"] < a.below]
    print(f"total: {len(rows)} cases, {len(well_all)} with kappa < {a.below:g}, "
          f"{len(over)} over {a.ulp:g} ULP, "
          f"{sum(1 for r in rows if r['kappa'] is None)} without a kappa here")
    for r in over[:20]:
        print(f"  over: {r['id']} kappa {r['kappa']:.3g} error {r['ulp']:.3g} ULP")
    if a.json:
        tmp = a.json + ".tmp"
        with open(tmp, "w") as fh:
            json.dump({"dtype": a.dtype, "below": a.below, "ulp": a.ulp, "cases": rows}, fh,
                      indent=1, default=lambda v: None)
        os.replace(tmp, a.json)
    if a.allow is not None and len(over) > a.allow:
        print(f"condition.py: {len(over)} well-conditioned cases over {a.ulp:g} ULP, "
              f"more than the {a.allow} allowed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
