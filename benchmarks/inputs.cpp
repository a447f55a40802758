#include "inputs.hpp"

#include <cstring>
#include <map>
#include <new>

#include "elements.hpp"

namespace lossbench::bench {

namespace {

using R = ValueRange;
constexpr R kAny{R::Uniform, -2, 2};
constexpr R kSign{R::Sign, -1, 1};
constexpr R kProb{R::Uniform, 0, 1};

const std::map<std::string_view, std::vector<InputBuilder>>& table() {
  static const std::map<std::string_view, std::vector<InputBuilder>> t = {
      {"l1_loss", {{"input", kAny}, {"target", kAny}}},
      {"mse_loss", {{"input", kAny}, {"target", kAny}}},
      {"huber_loss", {{"input", kAny}, {"target", kAny}}},
      {"smooth_l1_loss", {{"input", kAny}, {"target", kAny}}},
      {"soft_margin_loss", {{"input", kAny}, {"target", kSign}}},
      {"binary_cross_entropy", {{"input", {R::Uniform, 0.02, 0.98}}, {"target", kProb}}},
      {"binary_cross_entropy_with_logits", {{"input", {R::Uniform, -6, 6}}, {"target", kProb}}},
      {"margin_ranking_loss", {{"input1", kAny}, {"input2", kAny}, {"target", kSign}}},
      {"hinge_embedding_loss", {{"input", kAny}, {"target", kSign}}},
      {"poisson_nll_loss", {{"input", kAny}, {"target", {R::Uniform, 0, 4}}}},
      {"gaussian_nll_loss", {{"input", kAny}, {"target", kAny}, {"var", {R::Uniform, 0.25, 2}}}},
      {"kl_div", {{"input", {R::Uniform, -6, -0.05}}, {"target", {R::Uniform, 0.001, 1}}}},
  };
  return t;
}

std::uint64_t splitmix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

const std::vector<InputBuilder>* builders_for(std::string_view loss) {
  auto it = table().find(loss);
  return it == table().end() ? nullptr : &it->second;
}

Floor transcendental_floor(std::string_view loss) {
  constexpr double exp = 0.42, log = 0.65, log1p = 0.80;
  if (loss == "binary_cross_entropy") return {2 * log, 0};
  if (loss == "binary_cross_entropy_with_logits" || loss == "soft_margin_loss")
    return {exp + log1p, exp};  // backward: the sigmoid's exp
  if (loss == "poisson_nll_loss") return {exp, exp};
  if (loss == "kl_div" || loss == "gaussian_nll_loss") return {log, 0};
  return {0, 0};
}

std::size_t dtype_size(std::int32_t dtype) {
  switch (dtype) {
    case LB_FLOAT64:
    case LB_INT64: return 8;
    case LB_FLOAT32: return 4;
    default: return 2;
  }
}

const char* dtype_label(std::int32_t dtype) {
  switch (dtype) {
    case LB_FLOAT64: return "float64";
    case LB_FLOAT32: return "float32";
    case LB_FLOAT16: return "float16";
    case LB_BFLOAT16: return "bfloat16";
    default: return "int64";
  }
}

Buffer::Buffer(std::string name_, std::int32_t dtype_, std::int64_t n_)
    : dtype(dtype_), n(n_), name(std::move(name_)) {
  shape[0] = n;
  std::size_t b = (bytes() + 63) / 64 * 64;
  if (b == 0) b = 64;
  void* p = std::aligned_alloc(64, b);
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p, 0, b);
  data.reset(p);
}

lb_tensor Buffer::tensor() const {
  return lb_tensor{name.c_str(), data.get(), dtype, 1, shape, stride, {LB_DEVICE_CPU, 0}};
}

double Buffer::get(std::int64_t i) const {
  switch (dtype) {
    case LB_FLOAT64: return static_cast<const double*>(data.get())[i];
    case LB_FLOAT32: return static_cast<const float*>(data.get())[i];
    case LB_FLOAT16:
      return conformance::half_to_double(static_cast<const std::uint16_t*>(data.get())[i]);
    case LB_BFLOAT16:
      return conformance::bfloat16_to_double(static_cast<const std::uint16_t*>(data.get())[i]);
    default: return static_cast<double>(static_cast<const std::int64_t*>(data.get())[i]);
  }
}

std::vector<Buffer> make_inputs(std::string_view loss, std::int32_t dtype, std::int64_t n,
                                std::uint64_t seed) {
  std::vector<Buffer> out;
  const auto* b = builders_for(loss);
  if (b == nullptr) return out;
  std::uint64_t stream = seed * 1000003u;
  for (const auto& in : *b) {
    out.emplace_back(std::string(in.name), dtype, n);
    Buffer& buf = out.back();
    const ValueRange r = in.range;
    const std::uint64_t s = splitmix(++stream);
    void* p = buf.data.get();
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < n; ++i) {
      const std::uint64_t bits = splitmix(s ^ static_cast<std::uint64_t>(i));
      double v;
      if (r.kind == ValueRange::Sign)
        v = (bits & 1) ? 1.0 : -1.0;
      else
        v = r.lo + (r.hi - r.lo) * (static_cast<double>(bits >> 11) * 0x1p-53);
      switch (dtype) {
        case LB_FLOAT64: static_cast<double*>(p)[i] = v; break;
        case LB_FLOAT32: static_cast<float*>(p)[i] = static_cast<float>(v); break;
        case LB_FLOAT16: static_cast<std::uint16_t*>(p)[i] = conformance::double_to_half(v); break;
        default: static_cast<std::uint16_t*>(p)[i] = conformance::double_to_bfloat16(v); break;
      }
    }
  }
  return out;
}

}  // namespace lossbench::bench
