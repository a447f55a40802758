#!/usr/bin/env python3
"""PyTorch side by side with the lossbench cpu backend, from one run.

    torch_side_by_side.py [--plugin build/release/benchmarks/liblossbench_cpu.so] [--quick]
                          [--sizes 64KiB,256MiB] [--dtypes float32,float64] [--losses a,b]
                          [--threads N] [--reps 7] [--json OUT]

Loads the backend through the C ABI (include/lossbench/abi.h) with ctypes and runs
torch.nn.functional on the same numpy buffers (torch.from_numpy shares the memory), with the same
thread count, interleaved: each repetition times both (the order alternates between
repetitions), so both see the same machine state. Reports per case the median seconds of each,
GB/s on the byte model of benchmarks/inputs.cpp, and the ratio
torch / lossbench (> 1: lossbench is faster). Needs torch 2.2.2 (scripts/torch-venv.sh).
Two OpenMP runtimes share the process, each with its default wait policy (see main).
ctypes adds a few microseconds per call: cache-resident sizes are biased against lossbench.
"""
import argparse
import ctypes as C
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np

LB_OK, LB_FLOAT64, LB_FLOAT32, LB_INT64 = 0, 0, 1, 4

# Valid inputs per loss: the same shapes, ranges and byte models as benchmarks/inputs.cpp.
ANY, SIGN, PROB = ("u", -2, 2), ("s", -1, 1), ("u", 0, 1)
ELEMENTWISE = {
    "l1_loss": [("input", ANY), ("target", ANY)],
    "mse_loss": [("input", ANY), ("target", ANY)],
    "huber_loss": [("input", ANY), ("target", ANY)],
    "smooth_l1_loss": [("input", ANY), ("target", ANY)],
    "soft_margin_loss": [("input", ANY), ("target", SIGN)],
    "binary_cross_entropy": [("input", ("u", 0.02, 0.98)), ("target", PROB)],
    "binary_cross_entropy_with_logits": [("input", ("u", -6, 6)), ("target", PROB)],
    "margin_ranking_loss": [("input1", ANY), ("input2", ANY), ("target", SIGN)],
    "hinge_embedding_loss": [("input", ANY), ("target", SIGN)],
    "poisson_nll_loss": [("input", ANY), ("target", ("u", 0, 4))],
    "gaussian_nll_loss": [("input", ANY), ("target", ANY), ("var", ("u", 0.25, 2))],
    "kl_div": [("input", ("u", -6, -0.05)), ("target", ("u", 0.001, 1))],
}
ROWWISE = ["cross_entropy", "nll_loss", "multi_margin_loss", "multilabel_margin_loss",
           "multilabel_soft_margin_loss", "cosine_embedding_loss", "triplet_margin_loss",
           "triplet_margin_with_distance_loss"]
LOSSES = list(ELEMENTWISE) + ROWWISE + ["ctc_loss"]
LABELS = 4  # multilabel_margin_loss: labels per row before the -1 terminator


class Device(C.Structure):
    _fields_ = [("type", C.c_int32), ("index", C.c_int32)]


class Tensor(C.Structure):
    _fields_ = [("name", C.c_char_p), ("data", C.c_void_p), ("dtype", C.c_int32),
                ("ndim", C.c_int32), ("shape", C.POINTER(C.c_int64)),
                ("strides", C.POINTER(C.c_int64)), ("device", Device)]


class Param(C.Structure):
    _fields_ = [("name", C.c_char_p), ("type", C.c_int32), ("b", C.c_int32), ("i", C.c_int64),
                ("f", C.c_double), ("s", C.c_char_p)]


class Call(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("loss", C.c_char_p), ("reduction", C.c_char_p),
                ("inputs", C.POINTER(Tensor)), ("num_inputs", C.c_int32),
                ("params", C.POINTER(Param)), ("num_params", C.c_int32), ("device", Device)]


SUPPORTS = C.CFUNCTYPE(C.c_int32, C.c_char_p, C.c_int32, Device, C.c_char_p)
FORWARD = C.CFUNCTYPE(C.c_int32, C.POINTER(Call), C.POINTER(Tensor), C.c_char_p, C.c_size_t)
BACKWARD = C.CFUNCTYPE(C.c_int32, C.POINTER(Call), C.POINTER(Tensor), C.POINTER(Tensor), C.c_int32,
                       C.c_char_p, C.c_size_t)
FORWARD_BACKWARD = C.CFUNCTYPE(C.c_int32, C.POINTER(Call), C.POINTER(Tensor), C.POINTER(Tensor),
                               C.POINTER(Tensor), C.c_int32, C.c_char_p, C.c_size_t)


class Impl(C.Structure):
    _fields_ = [("abi_version", C.c_uint32), ("struct_size", C.c_uint32), ("name", C.c_char_p),
                ("version", C.c_char_p), ("supports", SUPPORTS), ("forward", FORWARD),
                ("backward", BACKWARD), ("synchronize", C.c_void_p), ("native_device", Device),
                ("device_alloc", C.c_void_p), ("device_free", C.c_void_p), ("copy", C.c_void_p),
                ("forward_backward", FORWARD_BACKWARD)]


def forward_backward_of(impl):
    """The table's one-call forward_backward, or None (a table too short to hold it, or NULL)."""
    end = Impl.forward_backward.offset + Impl.forward_backward.size
    if impl.struct_size < end or not C.cast(impl.forward_backward, C.c_void_p).value:
        return None
    return impl.forward_backward


def parse_size(s):
    for suf, mul in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("B", 1)):
        if s.endswith(suf):
            return int(s[: -len(suf)]) * mul
    return int(s)


def size_label(nbytes):
    """The benchmarks' label of a size (benchmarks/bench.cpp): 65536 -> 64KiB."""
    for suf, mul in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= mul and nbytes % mul == 0:
            return f"{nbytes // mul}{suf}"
    return f"{nbytes}B"


def rows(elements):
    """N rows of C classes (or D features), as inputs.cpp."""
    c = 8192 if elements >= 1 << 19 else 1024 if elements >= 8192 else 37 if elements >= 74 else 8
    return max(1, elements // c), c


def make_problem(loss, dtype, elements, seed=1):
    """(inputs [(name, array)], fwd_bytes, grad_bytes, shape label), as inputs.cpp's make_problem.
    The first input is the one whose gradient fwdbwd computes."""
    rng = np.random.default_rng(seed)
    e = np.dtype(dtype).itemsize

    def uni(lo, hi, shape):
        return np.ascontiguousarray(rng.uniform(lo, hi, shape).astype(dtype))

    def sign(shape):
        return np.ascontiguousarray(np.where(rng.integers(0, 2, shape) == 1, 1.0, -1.0)
                                    .astype(dtype))

    if loss in ELEMENTWISE:
        n = max(1, elements)
        out = []
        for name, (kind, lo, hi) in ELEMENTWISE[loss]:
            out.append((name, sign(n) if kind == "s" else uni(lo, hi, n)))
        return out, sum(a.nbytes for _, a in out), out[0][1].nbytes, f"n={n}"
    if loss == "ctc_loss":
        small = elements < 4096
        c = 8 if small else 256
        t = max(4, min(16 if small else 512, elements // c))
        n = max(1, elements // (c * t))
        s = max(1, t // (4 if small else 8))
        z = rng.uniform(-3, 3, (t, n, c))
        z = z - z.max(axis=2, keepdims=True)
        lp = z - np.log(np.exp(z).sum(axis=2, keepdims=True))
        out = [("log_probs", np.ascontiguousarray(lp.astype(dtype))),
               ("targets", rng.integers(1, c, (n, s), dtype=np.int64)),
               ("input_lengths", np.full(n, t, np.int64)),
               ("target_lengths", np.full(n, s, np.int64))]
        return (out, sum(a.nbytes for _, a in out), out[0][1].nbytes,
                f"T={t} N={n} C={c} S={s}")
    n, c = rows(elements)
    dim = "D" if loss.startswith("triplet") or loss == "cosine_embedding_loss" else "C"
    label = f"N={n} {dim}={c}"
    if loss in ("cross_entropy", "nll_loss", "multi_margin_loss"):
        x = uni(-6, -0.05, (n, c)) if loss == "nll_loss" else uni(-4, 4, (n, c))
        out = [("input", x), ("target", rng.integers(0, c, n, dtype=np.int64))]
        fwd = n * (e + 8) if loss == "nll_loss" else x.nbytes + n * 8
        return out, fwd, x.nbytes, label
    if loss == "multilabel_margin_loss":
        x = uni(-2, 2, (n, c))
        k = min(LABELS, c - 1)
        tg = np.zeros((n, c), np.int64)
        first = rng.integers(0, c, n)
        for j in range(k):
            tg[:, j] = (first + 3 * j) % c
        tg[:, k] = -1
        return [("input", x), ("target", tg)], x.nbytes + n * (k + 1) * 8, x.nbytes, label
    if loss == "multilabel_soft_margin_loss":
        x = uni(-4, 4, (n, c))
        y = np.ascontiguousarray(rng.integers(0, 2, (n, c)).astype(dtype))
        return [("input", x), ("target", y)], 2 * x.nbytes, x.nbytes, label
    if loss == "cosine_embedding_loss":
        out = [("input1", uni(-2, 2, (n, c))), ("input2", uni(-2, 2, (n, c))),
               ("target", sign(n))]
        return out, sum(a.nbytes for _, a in out), out[0][1].nbytes, label
    if loss.startswith("triplet"):
        out = [(name, uni(-2, 2, (n, c))) for name in ("anchor", "positive", "negative")]
        return out, sum(a.nbytes for _, a in out), out[0][1].nbytes, label
    raise ValueError(f"no input builder for loss '{loss}'")


def aligned_zeros(shape, dtype, align=64):
    """A zeroed array whose data starts on an `align`-byte boundary, as torch's CPU allocator
    gives its tensors (numpy's own large arrays start 16 bytes into a page)."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.zeros(nbytes + align, np.uint8)
    off = (-raw.ctypes.data) % align
    return raw[off:off + nbytes].view(dtype).reshape(shape)


class LossbenchCall:
    """One ABI call (forward, or forward + backward of the first input) on numpy buffers."""

    def __init__(self, impl, loss, inputs, dtype_code, backward):
        self.impl, self.backward = impl, backward
        self.keep = []

        def tensor(name, arr, code):
            nb = name.encode()
            shape = (C.c_int64 * arr.ndim)(*arr.shape)
            strides = (C.c_int64 * arr.ndim)(*[s // arr.itemsize for s in arr.strides])
            self.keep += [nb, shape, strides]
            return Tensor(nb, arr.ctypes.data, code, arr.ndim, shape, strides, Device(0, 0))

        tensors = (Tensor * len(inputs))()
        for k, (name, arr) in enumerate(inputs):
            tensors[k] = tensor(name, arr, LB_INT64 if arr.dtype == np.int64 else dtype_code)
        self.tensors = tensors
        self.call = Call(C.sizeof(Call), loss.encode(), b"mean", tensors, len(inputs), None, 0,
                         Device(0, 0))
        np_dtype = inputs[0][1].dtype
        self.out = np.zeros(1, np_dtype)
        self.gout = np.ones(1, np_dtype)
        self.grad = aligned_zeros(inputs[0][1].shape, np_dtype)
        self.out_t = Tensor(b"output", self.out.ctypes.data, dtype_code, 0, None, None, Device(0, 0))
        self.gout_t = Tensor(b"output", self.gout.ctypes.data, dtype_code, 0, None, None,
                             Device(0, 0))
        self.grad_t = (Tensor * 1)(tensor(inputs[0][0], self.grad, dtype_code))
        self.err = C.create_string_buffer(512)
        self.fused = forward_backward_of(impl)

    def __call__(self):
        if self.backward and self.fused is not None:
            # forward+backward in one call, as lossbench bench times it.
            s = self.fused(C.byref(self.call), C.byref(self.out_t), C.byref(self.gout_t),
                           self.grad_t, 1, self.err, 512)
            if s != LB_OK:
                raise RuntimeError(f"forward_backward: status {s}: {self.err.value.decode()}")
            return float(self.out[0])
        s = self.impl.forward(C.byref(self.call), C.byref(self.out_t), self.err, 512)
        if s != LB_OK:
            raise RuntimeError(f"forward: status {s}: {self.err.value.decode()}")
        if self.backward:
            s = self.impl.backward(C.byref(self.call), C.byref(self.gout_t), self.grad_t, 1,
                                   self.err, 512)
            if s != LB_OK:
                raise RuntimeError(f"backward: status {s}: {self.err.value.decode()}")
        return float(self.out[0])


def torch_call(torch, loss, inputs, backward):
    F = torch.nn.functional
    fn = getattr(F, loss)
    ts = [torch.from_numpy(a) for _, a in inputs]
    if backward:
        ts[0].requires_grad_(True)

    def run():
        y = fn(*ts, reduction="mean")
        if backward:
            y.backward()
            ts[0].grad = None
        return float(y)

    return run


def time_calls(fn, k):
    t0 = time.perf_counter()
    for _ in range(k):
        fn()
    return (time.perf_counter() - t0) / k


def context(lib_version, threads, torch):
    cpu = "unknown"
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and cpu == "unknown":
                    cpu = line.split(":", 1)[1].strip()
                if line.startswith("flags") and not flags:
                    flags = line.split(":", 1)[1]
    except OSError:
        pass
    isa = "avx512" if " avx512f" in flags else "avx2" if " avx2" in flags else "scalar"
    cap = os.environ.get("LOSSBENCH_CPU_ISA")
    order = ["scalar", "avx2", "avx512"]
    if cap in order and order.index(cap) < order.index(isa):
        isa = cap
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        commit = subprocess.run(["git", "-C", root, "rev-parse", "--short=12", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
        if subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                          capture_output=True, text=True, check=True).stdout.strip():
            commit += "-dirty"
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    try:
        torch_isa = torch.backends.cpu.get_cpu_capability()
    except AttributeError:
        torch_isa = "unknown"
    return {"cpu_model": cpu, "isa": isa, "torch_cpu_capability": torch_isa, "threads": threads,
            "git_commit": commit, "lossbench_cpu_version": lib_version,
            "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--plugin", default=os.path.join(here, "..", "build", "release", "benchmarks",
                                                     "liblossbench_cpu.so"))
    ap.add_argument("--quick", action="store_true", help="sizes 64KiB,4MiB, 5 repetitions")
    ap.add_argument("--sizes", default=None, help="bytes per input tensor (default 64KiB,256MiB)")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--losses", default=",".join(LOSSES))
    ap.add_argument("--directions", default="fwd,fwdbwd")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--rep-time", type=float, default=0.05, help="seconds per repetition and side")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    for loss in args.losses.split(","):
        if loss not in LOSSES:
            ap.error(f"--losses: unknown loss '{loss}' (known: {', '.join(LOSSES)})")
    sizes = args.sizes or ("64KiB,4MiB" if args.quick else "64KiB,256MiB")
    reps = args.reps or (5 if args.quick else 7)

    os.environ["LOSSBENCH_CPU_THREADS"] = str(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    # torch's wheel bundles its own libgomp: two OpenMP runtimes in one process. Both keep their
    # default wait policy (an idle thread spins GOMP_SPINCOUNT times, then sleeps), as in a user's
    # process, so neither pool spins through the other side's repetition. OMP_WAIT_POLICY=PASSIVE
    # (the earlier setting; still honoured from the environment) makes every parallel region of
    # either side pay a sleeping thread's wake-up, 100-500 us on this VM: torch's cross_entropy
    # 64 KiB forward+backward took 545 us instead of 76, lossbench's nll_loss 256 MiB forward
    # 280 us instead of 48 (one run of each setting).
    import torch

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    lib = C.CDLL(os.path.abspath(args.plugin))
    lib.lossbench_impl_v1.restype = C.POINTER(Impl)
    impl = lib.lossbench_impl_v1().contents
    ctx = context(impl.version.decode(), args.threads, torch)
    print("context: " + ", ".join(f"{k}={v}" for k, v in ctx.items()))
    results = []
    hdr = (f"{'loss':34} {'dtype':8} {'size':>7} {'dir':7} {'lossbench':>11} {'torch':>11} "
           f"{'lb GB/s':>8} {'pt GB/s':>8} {'torch/lb':>8}")
    print(hdr)
    for loss in args.losses.split(","):
        for dt in args.dtypes.split(","):
            code = LB_FLOAT32 if dt == "float32" else LB_FLOAT64
            if not impl.supports(loss.encode(), code, Device(0, 0), b"mean"):
                continue
            for size in sizes.split(","):
                nbytes = parse_size(size)
                n = nbytes // np.dtype(dt).itemsize
                inputs, fwd_bytes, grad_bytes, shape = make_problem(loss, dt, n)
                for direction in args.directions.split(","):
                    bwd = direction == "fwdbwd"
                    lbc = LossbenchCall(impl, loss, inputs, code, bwd)
                    ptc = torch_call(torch, loss, inputs, bwd)
                    # Warm up and calibrate the calls per repetition on the slower side.
                    lbc(), ptc()
                    one = max(time_calls(lbc, 1), time_calls(ptc, 1))
                    k = max(1, int(args.rep_time / max(one, 1e-7)))
                    tl, tp = [], []
                    for r in range(reps):
                        if r % 2 == 0:
                            tl.append(time_calls(lbc, k))
                            tp.append(time_calls(ptc, k))
                        else:
                            tp.append(time_calls(ptc, k))
                            tl.append(time_calls(lbc, k))
                    ml, mp = statistics.median(tl), statistics.median(tp)
                    moved = fwd_bytes + (grad_bytes if bwd else 0)
                    row = {"loss": loss, "dtype": dt, "size": size_label(nbytes),
                           "direction": direction,
                           "n": n, "shape": shape, "bytes": moved, "reps": reps, "calls_per_rep": k,
                           "lossbench_s": tl, "torch_s": tp, "lossbench_median_s": ml,
                           "torch_median_s": mp, "lossbench_GBps": moved / ml * 1e-9,
                           "torch_GBps": moved / mp * 1e-9, "ratio_torch_over_lossbench": mp / ml}
                    results.append(row)
                    print(f"{loss:34} {dt:8} {size:>7} {direction:7} {ml * 1e6:9.1f}us "
                          f"{mp * 1e6:9.1f}us {row['lossbench_GBps']:8.2f} "
                          f"{row['torch_GBps']:8.2f} {mp / ml:8.2f}", flush=True)
                    del lbc, ptc
                del inputs
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"context": ctx, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
