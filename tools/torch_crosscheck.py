#!/usr/bin/env python3
"""Cross-check lossbench's exact reference against PyTorch 2.2 on random cases.

For every loss of the catalog, draws random well-conditioned cases (several option sets and
reductions), evaluates them with `lossbench eval --grad --json` and with torch (float64 by
default, CPU), and reports the error of torch's output and gradients in ULPs of the dtype
against the exact values. Large errors point at a semantic difference between the reference and
PyTorch (or at an ill-conditioned case).

Usage: tools/torch_crosscheck.py --lossbench build/release/lossbench [--dtype float64]
       [--cases 4] [--seed 1] [--loss ID ...] [--max-ulp 64]
Needs torch 2.2 (scripts/torch-venv.sh makes .venv-torch with it).
"""
import argparse
import json
import math
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F


def hexs(a, dtype):
    flat = np.asarray(a, dtype=np.float64).ravel()
    return [("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else float.hex(float(v))) for v in flat]


TORCH_DTYPE = {"float64": torch.float64, "float32": torch.float32,
               "float16": torch.float16, "bfloat16": torch.bfloat16}


def quantize(a, dtype):
    return torch.tensor(np.asarray(a, dtype=np.float64)).to(TORCH_DTYPE[dtype]).double().numpy()


def cases_for(loss, rng, dtype):
    """Yields (inputs, params, reduction); inputs: name -> (numpy array, 'float'|'int')."""
    R = ["mean", "sum", "none"]
    n, c = 3, 4
    f = lambda *s: rng.normal(size=s)
    pos = lambda *s: rng.uniform(0.2, 2.0, size=s)
    sign = lambda *s: rng.choice([-1.0, 1.0], size=s)
    if loss in ("l1_loss", "mse_loss"):
        for r in R:
            yield {"input": (f(n, c), "f"), "target": (f(n, c), "f")}, {}, r
    elif loss == "huber_loss":
        for r, d in zip(R, [1.0, 0.5, 2.0]):
            yield {"input": (f(n, c), "f"), "target": (f(n, c), "f")}, {"delta": d}, r
    elif loss == "smooth_l1_loss":
        for r, b in zip(R + ["mean"], [1.0, 0.5, 2.0, 0.0]):
            yield {"input": (f(n, c), "f"), "target": (f(n, c), "f")}, {"beta": b}, r
    elif loss == "soft_margin_loss":
        for r in R:
            yield {"input": (f(n, c), "f"), "target": (sign(n, c), "f")}, {}, r
    elif loss == "poisson_nll_loss":
        for r, li, full in [("mean", True, False), ("sum", False, False), ("none", True, True), ("mean", False, True)]:
            x = f(n, c) if li else pos(n, c)
            yield {"input": (x, "f"), "target": (rng.uniform(0, 4, size=(n, c)), "f")}, {"log_input": li, "full": full}, r
    elif loss == "gaussian_nll_loss":
        for r, full, vs in [("mean", False, (n, c)), ("sum", True, (n, 1)), ("none", False, (n, c))]:
            yield {"input": (f(n, c), "f"), "target": (f(n, c), "f"), "var": (pos(*vs), "f")}, {"full": full}, r
    elif loss == "kl_div":
        for r, lt in [("batchmean", False), ("sum", True), ("none", False), ("mean", True)]:
            p = rng.dirichlet(np.ones(c), size=n)
            x = np.log(rng.dirichlet(np.ones(c), size=n))
            yield {"input": (x, "f"), "target": (np.log(p) if lt else p, "f")}, {"log_target": lt}, r
    elif loss == "binary_cross_entropy":
        for r, w in [("mean", False), ("sum", True), ("none", False)]:
            ins = {"input": (rng.uniform(0.05, 0.95, size=(n, c)), "f"), "target": (rng.uniform(0, 1, size=(n, c)), "f")}
            if w:
                ins["weight"] = (pos(c), "f")
            yield ins, {}, r
    elif loss == "binary_cross_entropy_with_logits":
        for r, w, pw in [("mean", False, False), ("sum", True, True), ("none", False, True)]:
            ins = {"input": (f(n, c) * 3, "f"), "target": (rng.uniform(0, 1, size=(n, c)), "f")}
            if w:
                ins["weight"] = (pos(n, c), "f")
            if pw:
                ins["pos_weight"] = (pos(c), "f")
            yield ins, {}, r
    elif loss == "margin_ranking_loss":
        for r, m in zip(R, [0.0, 0.5, 1.0]):
            yield {"input1": (f(n), "f"), "input2": (f(n), "f"), "target": (sign(n), "f")}, {"margin": m}, r
    elif loss == "hinge_embedding_loss":
        for r, m in zip(R, [1.0, 0.5, 2.0]):
            yield {"input": (f(n, c), "f"), "target": (sign(n, c), "f")}, {"margin": m}, r
    elif loss == "multilabel_margin_loss":
        for r in R:
            t = np.full((n, c), -1)
            for i in range(n):
                k = rng.integers(1, c)
                t[i, :k] = rng.permutation(c)[:k]
            yield {"input": (f(n, c), "f"), "target": (t, "i")}, {}, r
    elif loss == "multilabel_soft_margin_loss":
        for r, w in [("mean", False), ("sum", True), ("none", True)]:
            ins = {"input": (f(n, c), "f"), "target": (rng.integers(0, 2, size=(n, c)).astype(float), "f")}
            if w:
                ins["weight"] = (pos(c), "f")
            yield ins, {}, r
    elif loss == "cosine_embedding_loss":
        for r, m in zip(R, [0.0, 0.25, -0.5]):
            yield {"input1": (f(n, 5), "f"), "input2": (f(n, 5), "f"), "target": (sign(n), "f")}, {"margin": m}, r
    elif loss == "multi_margin_loss":
        for r, p, m, w in [("mean", 1, 1.0, False), ("sum", 2, 0.5, True), ("none", 1, 2.0, True)]:
            ins = {"input": (f(n, c), "f"), "target": (rng.integers(0, c, size=n), "i")}
            if w:
                ins["weight"] = (pos(c), "f")
            yield ins, {"p": p, "margin": m}, r
    elif loss == "triplet_margin_loss":
        for r, p, sw in [("mean", 2.0, False), ("sum", 1.0, True), ("none", 3.0, False)]:
            yield {k: (f(n, 5), "f") for k in ("anchor", "positive", "negative")}, {"p": p, "swap": sw, "margin": 1.0}, r
    elif loss == "triplet_margin_with_distance_loss":
        for r, d, sw in [("mean", None, False), ("sum", "cosine", True), ("none", "pairwise_distance", False)]:
            yield {k: (f(n, 5), "f") for k in ("anchor", "positive", "negative")}, {"distance_function": d, "swap": sw}, r
    elif loss == "nll_loss":
        for r, w, ig in [("mean", False, -100), ("sum", True, 1), ("none", False, 2), ("mean", True, 0)]:
            x = torch.log_softmax(torch.tensor(f(n, c)), 1).numpy()
            ins = {"input": (x, "f"), "target": (rng.integers(0, c, size=n), "i")}
            if w:
                ins["weight"] = (pos(c), "f")
            yield ins, {"ignore_index": ig}, r
    elif loss == "cross_entropy":
        for r, w, ls in [("mean", False, 0.0), ("sum", True, 0.25), ("none", False, 0.1), ("mean", True, 0.0)]:
            ins = {"input": (f(n, c, 2), "f"), "target": (rng.integers(0, c, size=(n, 2)), "i")}
            if w:
                ins["weight"] = (pos(c), "f")
            yield ins, {"label_smoothing": ls}, r
        for r, w, ls in [("mean", True, 0.0), ("none", False, 0.2)]:
            ins = {"input": (f(n, c), "f"), "target": (rng.dirichlet(np.ones(c), size=n), "f")}
            if w:
                ins["weight"] = (pos(c), "f")
            yield ins, {"label_smoothing": ls}, r
    elif loss == "ctc_loss":
        T, N, C, S = 6, 2, 4, 3
        for r, zi in [("mean", False), ("sum", True), ("none", False)]:
            lp = torch.log_softmax(torch.tensor(f(T, N, C)), 2).numpy()
            tl = rng.integers(1, S + 1, size=N)
            tgt = rng.integers(1, C, size=(N, S))
            il = np.array([T, T - 1])
            yield {"log_probs": (lp, "f"), "targets": (tgt, "i"), "input_lengths": (il, "i"),
                   "target_lengths": (tl, "i")}, {"zero_infinity": zi}, r
    else:
        raise KeyError(loss)


def to_case(loss, ins, params, reduction, dtype):
    inputs = {}
    for k, (a, kind) in ins.items():
        a = np.asarray(a)
        if kind == "i":
            inputs[k] = {"dtype": "int64", "shape": list(a.shape), "data": [int(v) for v in a.ravel()]}
        else:
            inputs[k] = {"dtype": dtype, "shape": list(a.shape), "data": hexs(quantize(a, dtype), dtype)}
    return {"loss": loss, "reduction": reduction, "params": params, "inputs": inputs}


def torch_eval(case, dtype, differentiate):
    tens = {}
    for k, t in case["inputs"].items():
        if t["dtype"] == "int64":
            tens[k] = torch.tensor(t["data"], dtype=torch.int64).reshape(t["shape"])
        else:
            v = torch.tensor([float.fromhex(s) if s.startswith(("0x", "-0x")) else float(s) for s in t["data"]],
                             dtype=torch.float64).reshape(t["shape"]).to(TORCH_DTYPE[dtype])
            tens[k] = v.requires_grad_(k in differentiate)
    params = dict(case["params"])
    loss = case["loss"]
    if loss == "triplet_margin_with_distance_loss":
        d = params.get("distance_function")
        if d == "cosine":
            params["distance_function"] = lambda a, b: 1.0 - F.cosine_similarity(a, b)
        elif d == "pairwise_distance":
            params["distance_function"] = F.pairwise_distance
    out = getattr(F, loss)(**tens, **params, reduction=case["reduction"])
    grads = {}
    diff = [k for k in differentiate if k in tens]
    try:
        if not diff:
            return out.detach().double().numpy().ravel(), grads
        gs = torch.autograd.grad(out.sum(), [tens[k] for k in diff], allow_unused=True)
        for k, g in zip(diff, gs):
            if g is not None:
                grads[k] = g.double().numpy().ravel()
    except RuntimeError as e:  # an input torch does not differentiate
        grads = {"error": str(e)}
    return out.detach().double().numpy().ravel(), grads


def ulp(x, dtype):
    bits = {"float64": 53, "float32": 24, "float16": 11, "bfloat16": 8}[dtype]
    emin = {"float64": -1022, "float32": -126, "float16": -14, "bfloat16": -126}[dtype]
    e = max(math.frexp(x)[1] - 1 if x != 0 else emin, emin)
    return 2.0 ** (e - bits + 1)


def err_ulp(got, exact_str, dtype):
    ex = float(exact_str) if exact_str not in ("nan", "inf", "-inf") else float(exact_str)
    if math.isnan(ex) or math.isnan(got):
        return 0.0 if math.isnan(ex) and math.isnan(got) else math.inf
    if math.isinf(ex) or math.isinf(got):
        return 0.0 if ex == got else math.inf
    return abs(got - ex) / ulp(ex, dtype)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lossbench", required=True)
    ap.add_argument("--dtype", default="float64")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--loss", nargs="*")
    ap.add_argument("--max-ulp", type=float, default=64.0)
    args = ap.parse_args()
    catalog = json.loads(subprocess.run([args.lossbench, "list", "--json"], check=True, capture_output=True, text=True).stdout)
    rng = np.random.default_rng(args.seed)
    bad = 0
    print(f"torch {torch.__version__}, dtype {args.dtype}, seed {args.seed}")
    print(f"{'loss':36} {'cases':>5} {'max ulp out':>12} {'max ulp grad':>12}  notes")
    for entry in catalog:
        loss = entry["id"]
        if args.loss and loss not in args.loss:
            continue
        worst_o = worst_g = 0.0
        notes = []
        count = 0
        for ins, params, red in cases_for(loss, rng, args.dtype):
            case = to_case(loss, ins, params, red, args.dtype)
            with tempfile.NamedTemporaryFile("w", suffix=".json") as fh:
                json.dump(case, fh)
                fh.flush()
                p = subprocess.run([args.lossbench, "eval", "--grad", "--json", fh.name], capture_output=True, text=True)
            if p.returncode != 0:
                notes.append(f"lossbench failed: {p.stderr.strip()[:120]}")
                bad += 1
                continue
            ref = json.loads(p.stdout)
            try:
                out, grads = torch_eval(case, args.dtype, set(ref.get("grad", {})))
            except Exception as e:  # noqa: BLE001 - report any torch failure as a note
                notes.append(f"torch failed: {e}"[:120])
                continue
            count += 1
            for got, ex in zip(out, ref["output"]["exact"]):
                worst_o = max(worst_o, err_ulp(float(got), ex, args.dtype))
            rg = ref.get("grad", {})
            if "error" in grads:
                notes.append("torch grad error: " + grads["error"][:80])
                grads = {}
            for k in set(rg) | set(grads):
                if k not in rg or k not in grads:
                    notes.append(f"grad {k}: only in {'lossbench' if k in rg else 'torch'}")
                    continue
                exact = [float(e) for e in rg[k]["exact"]]
                scale = max([abs(e) for e in exact if math.isfinite(e)] + [0.0])
                for got, ex in zip(grads[k], rg[k]["exact"]):
                    e = err_ulp(float(got), ex, args.dtype)
                    # An element far below the tensor's largest is compared in ULPs of that
                    # largest element: cancellation there is torch's, not a semantic difference.
                    if math.isfinite(e) and scale > 0 and abs(float(ex)) < scale * 2.0 ** -20:
                        e = abs(float(got) - float(ex)) / ulp(scale, args.dtype)
                    worst_g = max(worst_g, e)
        if worst_o > args.max_ulp or worst_g > args.max_ulp:
            bad += 1
        print(f"{loss:36} {count:5d} {worst_o:12.3g} {worst_g:12.3g}  {'; '.join(sorted(set(notes)))}")
    print("mismatches:", bad)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
