#!/usr/bin/env bash
# The CUDA backend's checks on a machine with a GPU, in one command:
#   timeout 480 scripts/gpu-check.sh [JOBS=16]
# 1. Preflight: the tools and libraries the build needs (cmake >= 3.25, ninja, nvcc, a C++
#    compiler, pkg-config; Debian/Ubuntu -dev packages: libmpfr-dev libgmp-dev libboost-dev
#    nlohmann-json3-dev libcli11-dev libssl-dev libgtest-dev libhwy-dev). Missing ones are a
#    loud failure with their list. On a machine that cannot install them, carry their .deb
#    files (and those of their -dev dependencies) in .debs/ (made elsewhere with `apt-get
#    download PACKAGES`; .debs/ listed in .git/info/exclude): they are unpacked under
#    /tmp/lossbench-deps (never into /) and the build is pointed at them (not yet tried on a
#    GPU machine).
# 2. Configure (release preset; the cuda backend is built whenever nvcc is found) and build
#    only the targets needed (lossbench, test_cuda, lossbench-cuda-bench).
# 3. test_cuda: the committed corpus through "cuda" within optimized/budgets.txt (all 21
#    losses), 16-bit rounding, reproducible reductions, nvcc formulas. A skipped test is a
#    failure here (a GPU is expected).
# 4. lossbench check --impl cuda over the corpus: the scorer's summary line.
# 5. The bandwidth benchmark: a copy kernel, each elementwise loss's forward, the row losses'
#    forward and backward (cross_entropy against its speed of light: logits read once, the
#    gradient written once), as % of the copy kernel's bandwidth; then, where python3 has torch
#    with CUDA, PyTorch's time for the same row-loss cases and our ratio to it.
# A short table is printed last. Exit status: non-zero when any step fails.
# With gpu-pack/ present (scripts/gpu-pack.sh, run where the build works), steps 1-2 are skipped
# and the packed programs run with their packed libraries.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
JOBS="${1:-16}"
export PATH="/usr/local/cuda/bin:$PATH"
LOG="$(mktemp -d)"
status() { printf '%-30s %s\n' "$1" "$2" >>"$LOG/table"; }
die() { echo "gpu-check: FAILED: $*" >&2; status "$1" "FAILED: ${*:2}"; echo; cat "$LOG/table"; exit 1; }
t0=$(date +%s)

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

TEST=build/release/optimized/cuda/test_cuda
LB=build/release/lossbench
BENCH=build/release/optimized/cuda/lossbench-cuda-bench
if [ -x gpu-pack/test_cuda ]; then
  # Programs built elsewhere by scripts/gpu-pack.sh, with their libraries: no build here.
  TEST=gpu-pack/test_cuda LB=gpu-pack/lossbench BENCH=gpu-pack/lossbench-cuda-bench
  export LD_LIBRARY_PATH="$PWD/gpu-pack/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export LOSSBENCH_SOURCE_DIR="$PWD"
  status preflight "packed programs (gpu-pack/, commit $(cat gpu-pack/COMMIT 2>/dev/null))"
  status build "skipped (packed)"
else

# ---- 1. preflight
if compgen -G ".debs/*.deb" >/dev/null; then
  DEPS=/tmp/lossbench-deps
  mkdir -p "$DEPS"
  for f in .debs/*.deb; do dpkg -x "$f" "$DEPS" || die preflight "dpkg -x $f"; done
  export PKG_CONFIG_SYSROOT_DIR="$DEPS"
  export PKG_CONFIG_PATH="$DEPS/usr/lib/x86_64-linux-gnu/pkgconfig:$DEPS/usr/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  export CMAKE_PREFIX_PATH="$DEPS/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  export CPATH="$DEPS/usr/include${CPATH:+:$CPATH}"
  export LIBRARY_PATH="$DEPS/usr/lib/x86_64-linux-gnu${LIBRARY_PATH:+:$LIBRARY_PATH}"
  export LD_LIBRARY_PATH="$DEPS/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export OPENSSL_ROOT_DIR="$DEPS/usr"
  echo "gpu-check: using the packages unpacked from .debs/ under $DEPS"
fi
missing=()
for tool in cmake ninja nvcc c++ pkg-config; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if command -v pkg-config >/dev/null; then
  for pc in mpfr gmp libhwy; do pkg-config --exists "$pc" || missing+=("pkg-config:$pc"); done
fi
header_dirs=(/usr/include /usr/local/include ${CPATH:+${CPATH//:/ }})
have_header() { for d in "${header_dirs[@]}"; do [ -e "$d/$1" ] && return 0; done; return 1; }
for h in boost/version.hpp nlohmann/json.hpp CLI/CLI.hpp openssl/sha.h gtest/gtest.h; do
  have_header "$h" || missing+=("header:$h")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "gpu-check: missing: ${missing[*]}" >&2
  echo "gpu-check: install (Debian/Ubuntu): cmake ninja-build nvidia-cuda-toolkit g++ pkg-config" \
       "libmpfr-dev libgmp-dev libboost-dev nlohmann-json3-dev libcli11-dev libssl-dev" \
       "libgtest-dev libhwy-dev, or carry their .deb files in .debs/" >&2
  die preflight "missing ${missing[*]}"
fi
status preflight "ok ($(cmake --version | head -1), $(nvcc --version | tail -1))"

# ---- 2. configure and build
if cmake --preset release -DLOSSBENCH_CUDA=ON >"$LOG/configure" 2>&1 &&
   grep -q "lossbench: CUDA backend" "$LOG/configure"; then
  status configure "ok"
else
  tail -30 "$LOG/configure"; die configure "see the log above (no CUDA compiler, or a library not found)"
fi
tb=$(date +%s)
if cmake --build build/release -j"$JOBS" --target test_cuda lossbench-cuda-bench lossbench \
     >"$LOG/build" 2>&1; then
  status build "ok ($(( $(date +%s) - tb )) s)"
else
  grep -B2 -A12 -m5 'error' "$LOG/build" | head -80; tail -20 "$LOG/build"; die build "see the log above"
fi

fi  # not packed

# ---- 3. tests
rc=0
"$TEST" --gtest_brief=0 2>&1 | tee "$LOG/test"
if [ "${PIPESTATUS[0]}" -eq 0 ] && ! grep -q "SKIPPED" "$LOG/test"; then
  status "test_cuda" "ok ($(grep -c '^\[       OK \]' "$LOG/test") tests)"
else
  status "test_cuda" "FAILED or skipped (see above)"; rc=1
fi

# ---- 4. the scorer over the corpus
"$LB" check --impl cuda --golden golden/corpus --budgets optimized/budgets.txt \
  --json "$LOG/check.json" --repro-dir "$LOG/repro" 2>&1 | tail -25 | tee "$LOG/check"
if [ "${PIPESTATUS[0]}" -eq 0 ] && ! grep -q ' 0 pass,' "$LOG/check"; then  # (all unsupported: no)
  status "lossbench check --impl cuda" "ok: $(grep -o '[0-9]* pass.*' "$LOG/check" | tail -1)"
else
  status "lossbench check --impl cuda" "FAILED: $(grep -o '[0-9]* pass.*' "$LOG/check" | tail -1)"; rc=1
fi

# ---- 5. bandwidth, and PyTorch's times for the same row-loss cases
timeout 240 "$BENCH" 256 float32 10 2>&1 | tee "$LOG/bench"
if [ "${PIPESTATUS[0]}" -eq 0 ]; then status bench ok; else status bench FAILED; rc=1; fi
if python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  if timeout 120 python3 - "$LOG/bench" >"$LOG/torch" 2>&1 <<'PY'
# PyTorch CUDA on the benchmark's row-loss cases (256 MiB of float32 logits, mean), median of
# 10 after warm-up, CUDA events; our time over PyTorch's from the benchmark's lines.
import sys, torch
import torch.nn.functional as F
ours = {}
for line in open(sys.argv[1]):
    parts = line.rsplit(None, 6)
    if len(parts) == 7:
        try:
            ours[parts[0].strip()] = (float(parts[1]), float(parts[4]))
        except ValueError:
            pass
def median_ms(f, reps=10):
    f(); f(); torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); f(); b.record(); b.synchronize(); ts.append(a.elapsed_time(b))
    return sorted(ts)[len(ts) // 2]
elems = (256 << 20) // 4
cases = [("cross_entropy (N, 32768)", 32768, 1, 0.0, False),
         ("cross_entropy (N, 1000)", 1000, 1, 0.0, False),
         ("cross_entropy smoothing 0.1", 32768, 1, 0.1, False),
         ("cross_entropy (N, 21, 64, 64)", 21, 4096, 0.0, False),
         ("cross_entropy prob. targets", 1000, 1, 0.0, True)]
print("%-34s %10s %10s %8s %8s" % ("row loss (mean)", "torch fwd", "torch bwd", "fwd x", "bwd x"))
for label, c, sp, ls, prob in cases:
    n = elems // (c * sp)
    shape = (n, c) if sp == 1 else (n, c, 64, 64)
    x = (torch.rand(shape, device="cuda") * 4 - 2).requires_grad_()
    if prob:
        t = torch.rand(shape, device="cuda")
    else:
        t = torch.randint(0, c, (n,) if sp == 1 else (n, 64, 64), device="cuda")
    fwd = median_ms(lambda: F.cross_entropy(x, t, label_smoothing=ls))
    loss = F.cross_entropy(x, t, label_smoothing=ls)
    # backward alone: the graph is kept and the same loss differentiated again
    bwd = median_ms(lambda: torch.autograd.grad(loss, x, retain_graph=True))
    o = ours.get(label)
    rf = "%.2f" % (o[0] / fwd) if o else "-"
    rb = "%.2f" % (o[1] / bwd) if o else "-"
    print("%-34s %10.3f %10.3f %8s %8s" % (label, fwd, bwd, rf, rb))
print("(x: our time / PyTorch's; ours include the host-side argument checks)")
PY
  then
    status "torch comparison" "ok (torch $(python3 -c 'import torch; print(torch.__version__)'))"
  else
    cat "$LOG/torch"; status "torch comparison" "FAILED (see above)"; rc=1
  fi
else
  echo "no python3 torch with CUDA: PyTorch comparison skipped" >"$LOG/torch"
  status "torch comparison" "skipped (no python3 torch with CUDA)"
fi

echo
echo "================ gpu-check summary ($(( $(date +%s) - t0 )) s) ================"
cat "$LOG/table"
grep '^\[cuda\] 16-bit\|^\[cuda\] verdicts\|^\[nvcc\]' "$LOG/test" || true
echo "--- bandwidth (GB/s of the bytes that must move; % of the copy kernel) ---"
sed -n '/^loss /,$p' "$LOG/bench"
cat "$LOG/torch"
exit $rc
