// A small CUDA bandwidth benchmark (scripts/gpu-check.sh): the bandwidth of a copy kernel, then
// each elementwise loss's forward (reduction 'none' and 'mean', float32 by default) on inputs of
// SIZE MiB each, as GB/s of the bytes it must move (inputs + output) and as a percentage of the
// copy's. CUDA events; median of REPS runs after a warm-up.
//   lossbench-cuda-bench [SIZE_MIB=256] [DTYPE=float32] [REPS=10]
// The elementwise losses' argument checks (the CPU backend's plan) run once on the host, outside
// the timing. The row losses (cross_entropy forward and backward, ...) are timed through the
// backend's ABI functions, host-side checks included (for class-index targets: the targets and
// weights copied to the host and back), against their speed of light: the logits read once
// (forward), read once and the gradient written once (backward).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cuda.hpp"
#include "driver.hpp"
#include "elements.hpp"
#include "plan.hpp"

namespace {

using namespace lossbench::opt;

#define CHECK_CUDA(x)                                                                  \
  do {                                                                                 \
    const cudaError_t e_ = (x);                                                        \
    if (e_ != cudaSuccess) {                                                           \
      std::fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, cudaGetErrorString(e_)); \
      std::exit(1);                                                                    \
    }                                                                                  \
  } while (0)

__global__ void copy_kernel(const float4* __restrict__ src, float4* __restrict__ dst,
                            std::int64_t n) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride)
    dst[i] = src[i];
}

template <class F>
float median_ms(int reps, F&& f) {
  cudaEvent_t a, b;
  CHECK_CUDA(cudaEventCreate(&a));
  CHECK_CUDA(cudaEventCreate(&b));
  f();  // warm-up
  f();
  std::vector<float> t;
  for (int r = 0; r < reps; ++r) {
    CHECK_CUDA(cudaEventRecord(a));
    f();
    CHECK_CUDA(cudaEventRecord(b));
    CHECK_CUDA(cudaEventSynchronize(b));
    float ms = 0;
    CHECK_CUDA(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms);
  }
  CHECK_CUDA(cudaEventDestroy(a));
  CHECK_CUDA(cudaEventDestroy(b));
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

struct LossCase {
  const char* id;
  std::vector<const char*> inputs;
};

std::int32_t dtype_of(const std::string& s) {
  if (s == "float64") return LB_FLOAT64;
  if (s == "float16") return LB_FLOAT16;
  if (s == "bfloat16") return LB_BFLOAT16;
  return LB_FLOAT32;
}

// The row losses through the ABI (cuda_impl()): logits of `bytes` bytes, (N, C) or (N, C, H, W).
struct RowCase {
  const char* label;
  const char* loss;
  std::int64_t c, spatial;  // classes; H * W (1: an (N, C) input)
  const char* target;       // "index" (int64 class targets), "same" (a tensor like the input)
  double smoothing;         // cross_entropy's label_smoothing (0: none)
};

int row_losses(std::int64_t mib, std::int32_t dtype, int reps, double copy_gbs) {
  const lb_impl* impl = lossbench::opt::cuda_impl();
  const std::size_t es = lossbench::conformance::element_size(dtype);
  const std::size_t bytes = static_cast<std::size_t>(mib) << 20;
  const std::vector<RowCase> cases = {
      {"cross_entropy (N, 32768)", "cross_entropy", 32768, 1, "index", 0.0},
      {"cross_entropy (N, 1000)", "cross_entropy", 1000, 1, "index", 0.0},
      {"cross_entropy smoothing 0.1", "cross_entropy", 32768, 1, "index", 0.1},
      {"cross_entropy (N, 21, 64, 64)", "cross_entropy", 21, 4096, "index", 0.0},
      {"cross_entropy prob. targets", "cross_entropy", 1000, 1, "same", 0.0},
      {"multi_margin_loss (N, 1000)", "multi_margin_loss", 1000, 1, "index", 0.0},
      {"multilabel_soft_margin (N, 1000)", "multilabel_soft_margin_loss", 1000, 1, "same", 0.0},
  };
  std::printf("\n%-34s %10s %10s %7s %10s %10s %7s\n", "row loss (mean)", "fwd ms", "fwd GB/s",
              "%copy", "bwd ms", "bwd GB/s", "%copy");
  for (const auto& rc : cases) {
    const std::int64_t n = static_cast<std::int64_t>(bytes / es) / (rc.c * rc.spatial);
    const bool kdim = rc.spatial > 1;
    const std::int64_t xshape[4] = {n, rc.c, 64, 64};
    const std::int64_t xstrides[4] = {rc.c * rc.spatial, rc.spatial, 64, 1};
    const std::int64_t ishape[3] = {n, 64, 64};
    const std::int64_t istrides[3] = {4096, 64, 1};
    const std::int64_t numel = n * rc.c * rc.spatial;
    const std::int64_t positions = n * rc.spatial;
    std::vector<unsigned char> hx(static_cast<std::size_t>(numel) * es);
    std::vector<std::int64_t> ht(static_cast<std::size_t>(positions));
    for (std::int64_t i = 0; i < numel; ++i)
      lossbench::conformance::store_float(
          hx.data(), dtype, i, static_cast<double>((i * 2654435761u) % 1000003) / 250000.0 - 2.0);
    for (std::int64_t i = 0; i < positions; ++i)
      ht[static_cast<std::size_t>(i)] = (i * 7919) % rc.c;
    void *x = nullptr, *t = nullptr, *gx = nullptr, *out = nullptr;
    const bool same = std::strcmp(rc.target, "same") == 0;
    const std::size_t tbytes = same ? hx.size() : ht.size() * sizeof(std::int64_t);
    CHECK_CUDA(cudaMalloc(&x, hx.size()));
    CHECK_CUDA(cudaMalloc(&gx, hx.size()));
    CHECK_CUDA(cudaMalloc(&t, tbytes));
    CHECK_CUDA(cudaMalloc(&out, 16));
    CHECK_CUDA(cudaMemcpy(x, hx.data(), hx.size(), cudaMemcpyHostToDevice));
    if (same) {
      // Probabilities / multilabel targets in [0, 1): the logits' pattern rescaled.
      std::vector<unsigned char> hy(hx.size());
      for (std::int64_t i = 0; i < numel; ++i)
        lossbench::conformance::store_float(hy.data(), dtype, i,
                                            static_cast<double>((i * 40503u) % 65537) / 65537.0);
      CHECK_CUDA(cudaMemcpy(t, hy.data(), tbytes, cudaMemcpyHostToDevice));
    } else {
      CHECK_CUDA(cudaMemcpy(t, ht.data(), tbytes, cudaMemcpyHostToDevice));
    }
    const lb_device gpu{LB_DEVICE_CUDA, 0};
    const std::int32_t xdims = kdim ? 4 : 2;
    lb_tensor in[2] = {};
    in[0] = lb_tensor{"input", x, dtype, xdims, xshape, xstrides, gpu};
    if (same) {
      in[1] = lb_tensor{"target", t, dtype, xdims, xshape, xstrides, gpu};
    } else if (kdim) {
      in[1] = lb_tensor{"target", t, LB_INT64, 3, ishape, istrides, gpu};
    } else {  // (N): stride 1
      in[1] = lb_tensor{"target", t, LB_INT64, 1, xshape, istrides + 2, gpu};
    }
    lb_param smoothing{"label_smoothing", LB_PARAM_FLOAT, 0, 0, rc.smoothing, nullptr};
    lb_call call{};
    call.struct_size = sizeof call;
    call.loss = rc.loss;
    call.reduction = "mean";
    call.inputs = in;
    call.num_inputs = 2;
    call.params = &smoothing;
    call.num_params = rc.smoothing > 0 ? 1 : 0;
    call.device = gpu;
    lb_tensor o{"output", out, dtype, 0, xshape, xstrides, gpu};
    lb_tensor g{"input", gx, dtype, xdims, xshape, xstrides, gpu};
    char error[512] = {};
    std::int32_t status = LB_OK;
    const float fwd = median_ms(reps, [&] {
      const std::int32_t s = impl->forward(&call, &o, error, sizeof error);
      if (s != LB_OK) status = s;
    });
    const float bwd = median_ms(reps, [&] {
      const std::int32_t s = impl->backward(&call, nullptr, &g, 1, error, sizeof error);
      if (s != LB_OK) status = s;
    });
    if (status != LB_OK) {
      std::fprintf(stderr, "%s: status %d: %s\n", rc.label, status, error);
      return 1;
    }
    const double xb = static_cast<double>(hx.size());
    const double fwd_bytes = xb + (same ? xb : 0.0);
    const double bwd_bytes = 2.0 * xb + (same ? xb : 0.0);
    const double fg = fwd_bytes / (fwd * 1e-3) / 1e9, bg = bwd_bytes / (bwd * 1e-3) / 1e9;
    std::printf("%-34s %10.3f %10.1f %6.1f%% %10.3f %10.1f %6.1f%%\n", rc.label, fwd, fg,
                100.0 * fg / copy_gbs, bwd, bg, 100.0 * bg / copy_gbs);
    CHECK_CUDA(cudaFree(x));
    CHECK_CUDA(cudaFree(t));
    CHECK_CUDA(cudaFree(gx));
    CHECK_CUDA(cudaFree(out));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::int64_t mib = argc > 1 ? std::atoll(argv[1]) : 256;
  const std::string dtype_name = argc > 2 ? argv[2] : "float32";
  const int reps = argc > 3 ? std::atoi(argv[3]) : 10;
  const std::int32_t dtype = dtype_of(dtype_name);
  const std::size_t es = lossbench::conformance::element_size(dtype);
  const std::size_t bytes = static_cast<std::size_t>(mib) << 20;
  const std::int64_t n = static_cast<std::int64_t>(bytes / es);
  if (cuda::device_count() == 0) {
    std::fprintf(stderr, "no CUDA device\n");
    return 2;
  }
  std::printf("device: %s; inputs of %lld MiB (%lld %s elements each), median of %d\n",
              cuda::device_name().c_str(), static_cast<long long>(mib), static_cast<long long>(n),
              dtype_name.c_str(), reps);

  // Copy bandwidth: read + write of one input's bytes.
  void* src = nullptr;
  void* dst = nullptr;
  CHECK_CUDA(cudaMalloc(&src, bytes));
  CHECK_CUDA(cudaMalloc(&dst, bytes));
  CHECK_CUDA(cudaMemset(src, 0, bytes));
  const std::int64_t n4 = static_cast<std::int64_t>(bytes / 16);
  const float copy_ms = median_ms(reps, [&] {
    copy_kernel<<<2048, 256>>>(static_cast<const float4*>(src), static_cast<float4*>(dst), n4);
  });
  CHECK_CUDA(cudaGetLastError());
  const double copy_gbs = 2.0 * static_cast<double>(bytes) / (copy_ms * 1e-3) / 1e9;
  CHECK_CUDA(cudaFree(dst));
  CHECK_CUDA(cudaFree(src));

  // Inputs: values in [0.25, 0.75) (valid for every loss: probabilities, variances...), the
  // same on the host (for the plan's value checks) and on the device.
  std::vector<unsigned char> host(bytes);
  for (std::int64_t i = 0; i < n; ++i) {
    const double x = 0.25 + 0.5 * static_cast<double>((i * 2654435761u) % 1000003) / 1000003.0;
    lossbench::conformance::store_float(host.data(), dtype, i, x);
  }
  const std::vector<LossCase> cases = {
      {"l1_loss", {"input", "target"}},
      {"mse_loss", {"input", "target"}},
      {"huber_loss", {"input", "target"}},
      {"smooth_l1_loss", {"input", "target"}},
      {"soft_margin_loss", {"input", "target"}},
      {"binary_cross_entropy", {"input", "target"}},
      {"binary_cross_entropy_with_logits", {"input", "target"}},
      {"margin_ranking_loss", {"input1", "input2", "target"}},
      {"hinge_embedding_loss", {"input", "target"}},
      {"poisson_nll_loss", {"input", "target"}},
      {"gaussian_nll_loss", {"input", "target", "var"}},
      {"kl_div", {"input", "target"}},
  };
  std::vector<void*> dev(3);
  for (auto& d : dev) {
    CHECK_CUDA(cudaMalloc(&d, bytes));
    CHECK_CUDA(cudaMemcpy(d, host.data(), bytes, cudaMemcpyHostToDevice));
  }
  void* out = nullptr;
  CHECK_CUDA(cudaMalloc(&out, bytes));

  std::printf("\n%-34s %10s %10s %7s %10s %10s %7s\n", "loss", "none ms", "none GB/s", "%copy",
              "mean ms", "mean GB/s", "%copy");
  std::printf("%-34s %10.3f %10.1f %6.1f%%\n", "copy kernel", copy_ms, copy_gbs, 100.0);
  const std::int64_t shape[1] = {n};
  const std::int64_t strides[1] = {1};
  for (const auto& c : cases) {
    std::vector<lb_tensor> t;
    for (const char* name : c.inputs)
      t.push_back(lb_tensor{name, host.data(), dtype, 1, shape, strides, {LB_DEVICE_CPU, 0}});
    double row[2][2] = {};
    for (int r = 0; r < 2; ++r) {
      const char* reduction = r == 0 ? "none" : "mean";
      lb_call call{};
      call.struct_size = sizeof call;
      call.loss = c.id;
      call.reduction = reduction;
      call.inputs = t.data();
      call.num_inputs = static_cast<std::int32_t>(t.size());
      call.device = {LB_DEVICE_CPU, 0};
      lb_tensor o{"output", out, dtype, r == 0 ? 1 : 0, shape, strides, {LB_DEVICE_CPU, 0}};
      PlannedCall pc;
      std::string error;
      if (plan_forward(call, o, pc, error) != LB_OK) {
        std::fprintf(stderr, "%s %s: %s\n", c.id, reduction, error.c_str());
        return 1;
      }
      const void* data[kMaxInputs] = {};
      for (int j = 0; j < pc.plan.num_inputs; ++j)
        if (pc.inputs[j] != nullptr)
          data[j] = dev[static_cast<std::size_t>(pc.inputs[j] - t.data())];
      const cuda::DevPlan plan = cuda::to_dev_plan(pc.plan, data);
      std::string failure;
      const float ms = median_ms(reps, [&] {
        const std::string e = cuda::forward(plan, out, dtype);
        if (!e.empty()) failure = e;
      });
      if (!failure.empty()) {
        std::fprintf(stderr, "%s %s: %s\n", c.id, reduction, failure.c_str());
        return 1;
      }
      const double moved = static_cast<double>(bytes) * static_cast<double>(c.inputs.size()) +
                           (r == 0 ? static_cast<double>(bytes) : 0.0);
      row[r][0] = ms;
      row[r][1] = moved / (ms * 1e-3) / 1e9;
    }
    std::printf("%-34s %10.3f %10.1f %6.1f%% %10.3f %10.1f %6.1f%%\n", c.id, row[0][0], row[0][1],
                100.0 * row[0][1] / copy_gbs, row[1][0], row[1][1], 100.0 * row[1][1] / copy_gbs);
  }
  for (auto& d : dev) CHECK_CUDA(cudaFree(d));
  CHECK_CUDA(cudaFree(out));
  return row_losses(mib, dtype, reps, copy_gbs);
}
