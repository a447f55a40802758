#!/usr/bin/env python3
"""Regression gate over two lossbench_bench JSON files (Google Benchmark format).

    compare.py BASE.json NEW.json [--threshold 0.25] [--alpha 0.05] [--metric pct_sol]

Gates on percent of speed of light (pct_sol, measured against the roof of the same run), never
on absolute time. Per benchmark: the medians over repetitions and a two-sided Mann-Whitney U
test (exact distribution without ties, normal approximation with tie correction otherwise), as
Google Benchmark's tools/compare.py does. A benchmark regresses when its median pct_sol dropped
by THRESHOLD or more AND the drop is significant (p < ALPHA); with fewer than 4 repetitions on
either side no test can reach significance, and the threshold alone decides (a warning says so).
A benchmark that erred in NEW (e.g. a correctness check that failed) is a failure too.
Exit status: 0 no regression, 1 regression or error, 2 bad usage, unreadable files or no
benchmark in common.
Plain Python 3, no third-party modules.
"""
import argparse
import json
import math
import sys
from functools import lru_cache


def load(path):
    try:
        with open(path) as f:
            doc = json.load(f)
    except ValueError as e:
        raise ValueError(f"{path}: not a JSON file ({e})") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list):
        raise ValueError(f"{path}: not a benchmark result (no \"benchmarks\" array)")
    runs, errors = {}, {}
    for b in doc.get("benchmarks", []):
        if b.get("run_type", "iteration") != "iteration":
            continue
        name = b.get("run_name", b["name"])
        if b.get("error_occurred"):
            errors[name] = b.get("error_message", "error")
            continue
        runs.setdefault(name, []).append(b)
    return doc.get("context", {}), runs, errors


@lru_cache(maxsize=None)
def _count(m, n, u):
    """Number of orderings of m x's and n y's with U (x-before-y pairs) equal to u."""
    if u < 0 or u > m * n:
        return 0
    if m == 0 or n == 0:
        return 1 if u == 0 else 0
    return _count(m - 1, n, u - n) + _count(m, n - 1, u)


def mann_whitney(a, b):
    """Two-sided p-value of the Mann-Whitney U test between samples a and b."""
    m, n = len(a), len(b)
    if m == 0 or n == 0:
        return 1.0
    u = sum(1.0 if x > y else 0.5 if x == y else 0.0 for x in a for y in b)
    ties = len(set(a) | set(b)) < m + n
    if not ties and m * n <= 400:
        uu = int(round(u))
        total = math.comb(m + n, m)
        lo = sum(_count(m, n, k) for k in range(0, uu + 1)) / total
        hi = sum(_count(m, n, k) for k in range(uu, m * n + 1)) / total
        return min(1.0, 2 * min(lo, hi))
    allv = sorted(a + b)
    counts = {}
    for v in allv:
        counts[v] = counts.get(v, 0) + 1
    tie = sum(t ** 3 - t for t in counts.values())
    N = m + n
    sigma = math.sqrt(m * n / 12.0 * ((N + 1) - tie / (N * (N - 1))))
    if sigma == 0:
        return 1.0
    z = (abs(u - m * n / 2.0) - 0.5) / sigma
    return min(1.0, math.erfc(max(z, 0) / math.sqrt(2)))


def median(v):
    s = sorted(v)
    k = len(s)
    return s[k // 2] if k % 2 else 0.5 * (s[k // 2 - 1] + s[k // 2])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base")
    ap.add_argument("new")
    ap.add_argument("--threshold", type=float, default=0.25,
                    help="relative drop of the median that fails (default 0.25)")
    ap.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    ap.add_argument("--metric", default="pct_sol", help="counter to compare (default pct_sol)")
    ap.add_argument("--quiet", action="store_true", help="print only regressions and the summary")
    ap.add_argument("--regressions-out", default=None,
                    help="write the names of the regressed or erred benchmarks here, one a line")
    args = ap.parse_args(argv)
    try:
        bctx, base, _ = load(args.base)
        nctx, new, nerr = load(args.new)
    except (OSError, ValueError, KeyError) as e:
        print(f"compare: {e}", file=sys.stderr)
        return 2

    for label, ctx in (("base", bctx), ("new", nctx)):
        print(f"{label}: commit {ctx.get('git_commit', '?')}, {ctx.get('cpu_model', '?')}, "
              f"isa {ctx.get('isa', '?')}, threads {ctx.get('threads', '?')}, "
              f"sizes {ctx.get('sizes', '?')}")
    for key in ("threads", "sizes"):
        if bctx.get(key) != nctx.get(key):
            print(f"compare: not comparable: {key} {bctx.get(key)} (base) vs {nctx.get(key)} (new)",
                  file=sys.stderr)
            return 2
    regressions, compared, warned = [], 0, False
    print(f"{'benchmark':64} {'base':>8} {'new':>8} {'change':>8} {'p':>7}  verdict")
    for name in sorted(set(base) | set(new) | set(nerr)):
        if name.startswith("sol/"):
            continue
        if name in nerr:
            print(f"{name:64} {'':>8} {'':>8} {'':>8} {'':>7}  ERROR: {nerr[name]}")
            regressions.append(name)
            continue
        if name not in base or name not in new:
            if not args.quiet:
                print(f"{name:64} only in {'base' if name in base else 'new'}")
            continue
        a = [r[args.metric] for r in base[name] if args.metric in r]
        b = [r[args.metric] for r in new[name] if args.metric in r]
        if not a or not b:
            continue
        compared += 1
        ma, mb = median(a), median(b)
        change = mb / ma - 1 if ma > 0 else 0.0
        p = mann_whitney(a, b)
        testable = len(a) >= 4 and len(b) >= 4
        if not testable and not warned:
            print("warning: fewer than 4 repetitions: the threshold alone decides", file=sys.stderr)
            warned = True
        significant = p < args.alpha or not testable
        if change <= -args.threshold and significant:
            verdict = "REGRESSION"
            regressions.append(name)
        elif change <= -args.threshold:
            verdict = "slower (not significant)"
        elif change >= args.threshold and significant:
            verdict = "faster"
        else:
            verdict = "same"
        if not args.quiet or verdict == "REGRESSION":
            print(f"{name:64} {ma:8.2f} {mb:8.2f} {100 * change:+7.1f}% {p:7.4f}  {verdict}")
    print(f"compare: {compared} benchmarks compared on {args.metric}, "
          f"{len(regressions)} regressions or errors (threshold {100 * args.threshold:.0f}%, "
          f"alpha {args.alpha})")
    if args.regressions_out:
        with open(args.regressions_out, "w") as f:
            f.writelines(name + "\n" for name in regressions)
    if compared == 0 and not regressions:
        print("compare: no benchmark in common: nothing was gated", file=sys.stderr)
        return 2
    return 1 if regressions else 0


if __name__ == "__main__":
    sys.exit(main())
