// The generation context, case builder and value helpers of golden/gen.hpp.
#include "gen.hpp"

#include <mpfr.h>

#include <cmath>
#include <limits>
#include <stdexcept>

namespace lossbench::golden {

std::string_view to_string(Group g) {
  switch (g) {
    case Group::smoke: return "smoke";
    case Group::reference: return "reference";
    case Group::special: return "special";
    case Group::hard: return "hard";
    case Group::error: return "error";
  }
  return "?";
}

bool parse_group(std::string_view name, Group& out) {
  for (Group g : kGroups)
    if (to_string(g) == name) {
      out = g;
      return true;
    }
  return false;
}

namespace {
ojson float_data(const std::vector<double>& v) {
  ojson a = ojson::array();
  for (double x : v) a.push_back(hex_string(x));
  return a;
}
void check_count(std::string_view name, const Shape& shape, std::size_t n) {
  if (count(shape) != n)
    throw std::logic_error("generator: input " + std::string(name) + " has " + std::to_string(n) +
                           " values for shape " + shape_string(shape));
}
}  // namespace

CaseBuilder::CaseBuilder(const LossInfo& loss, DType dtype, std::string_view reduction)
    : dtype_(dtype) {
  doc_["loss"] = loss.name;
  doc_["reduction"] = reduction;
  doc_["params"] = ojson::object();
  doc_["inputs"] = ojson::object();
}

CaseBuilder& CaseBuilder::param(std::string_view name, ojson value) {
  doc_["params"][std::string(name)] = std::move(value);
  return *this;
}

CaseBuilder& CaseBuilder::floats(std::string_view name, const Shape& shape,
                                 const std::vector<double>& v) {
  return floats_as(name, dtype_, shape, v);
}

CaseBuilder& CaseBuilder::floats_as(std::string_view name, DType as, const Shape& shape,
                                    const std::vector<double>& v) {
  check_count(name, shape, v.size());
  doc_["inputs"][std::string(name)] = {
      {"dtype", to_string(as)}, {"shape", shape}, {"data", float_data(rounded(v, as))}};
  return *this;
}

CaseBuilder& CaseBuilder::ints(std::string_view name, const Shape& shape,
                               const std::vector<std::int64_t>& v) {
  check_count(name, shape, v.size());
  doc_["inputs"][std::string(name)] = {{"dtype", "int64"}, {"shape", shape}, {"data", v}};
  return *this;
}

CaseBuilder& CaseBuilder::grad_output(const Shape& shape, const std::vector<double>& v) {
  check_count("grad_output", shape, v.size());
  doc_["grad_output"] = {
      {"dtype", to_string(dtype_)}, {"shape", shape}, {"data", float_data(rounded(v, dtype_))}};
  return *this;
}

CaseBuilder& CaseBuilder::note(std::string text) {
  notes_.push_back(std::move(text));
  return *this;
}

CaseBuilder& CaseBuilder::expect_error(std::string error_class) {
  expected_error_ = std::move(error_class);
  return *this;
}

Gen::Gen(const LossInfo& l, Group g, Tier t, std::uint64_t seed)
    : loss(l), group(g), tier(t), rng(seed) {}

std::vector<DType> Gen::dtypes() const {
  if (group == Group::smoke) return {DType::float64, DType::float32};
  return {kFloatDTypes.begin(), kFloatDTypes.end()};
}

std::vector<std::string> Gen::reductions() const {
  return {loss.reductions.begin(), loss.reductions.end()};
}

std::size_t count(const Shape& s) { return static_cast<std::size_t>(numel(s)); }

Values normal(Rng& rng, std::size_t n, double scale, double shift) {
  Values v(n);
  for (auto& x : v) x = shift + scale * rng.normal();
  return v;
}

Values uniform(Rng& rng, std::size_t n, double lo, double hi) {
  Values v(n);
  for (auto& x : v) x = rng.uniform(lo, hi);
  return v;
}

Values signs(Rng& rng, std::size_t n) {
  Values v(n);
  for (auto& x : v) x = rng.sign();
  return v;
}

Values wide(Rng& rng, std::size_t n, DType dtype) {
  int lo = -60, hi = 60;
  if (dtype == DType::float32 || dtype == DType::bfloat16) lo = -40, hi = 40;
  if (dtype == DType::float16) lo = -12, hi = 12;
  Values v(n);
  for (auto& x : v)
    x = rng.sign() * std::ldexp(1.0 + rng.uniform(), static_cast<int>(rng.range(lo, hi)));
  return v;
}

Values grid(Rng& rng, std::size_t n, const std::vector<double>& choices) {
  Values v(n);
  for (auto& x : v) x = choices[rng.below(choices.size())];
  return v;
}

double smallest_subnormal(DType dtype) {
  const auto f = format_of(dtype);
  return std::ldexp(1.0, f.emin - f.precision + 1);
}
double smallest_normal(DType dtype) { return std::ldexp(1.0, format_of(dtype).emin); }
double largest_finite(DType dtype) {
  const auto f = format_of(dtype);
  return std::ldexp(2.0 - std::ldexp(1.0, 1 - f.precision), f.emax);
}

std::vector<double> special_values(DType dtype) {
  const double inf = std::numeric_limits<double>::infinity();
  return {std::numeric_limits<double>::quiet_NaN(),
          inf,
          -inf,
          0.0,
          -0.0,
          smallest_subnormal(dtype),
          -smallest_subnormal(dtype),
          largest_finite(dtype)};
}

void sprinkle(Rng& rng, Values& v, const std::vector<double>& pool, double fraction) {
  if (v.empty()) return;
  bool any = false;
  for (auto& x : v)
    if (rng.coin(fraction)) {
      x = pool[rng.below(pool.size())];
      any = true;
    }
  if (!any) v[rng.below(v.size())] = pool[rng.below(pool.size())];
}

Values rounded(Values v, DType dtype) {
  for (auto& x : v) x = round_to(x, dtype);
  return v;
}

namespace {
// (softmax or log_softmax) along `dim`.
Values softmax_impl(const Values& x, const Shape& shape, std::size_t dim, bool log) {
  const std::size_t n = x.size();
  Values out(n);
  if (n == 0) return out;
  std::size_t inner = 1;
  for (std::size_t d = dim + 1; d < shape.size(); ++d) inner *= static_cast<std::size_t>(shape[d]);
  const std::size_t c = shape.empty() ? 1 : static_cast<std::size_t>(shape[dim]);
  const std::size_t outer = n / (c * inner);
  mpfr_t s, t, m;
  mpfr_inits2(128, s, t, m, static_cast<mpfr_ptr>(nullptr));
  for (std::size_t o = 0; o < outer; ++o)
    for (std::size_t i = 0; i < inner; ++i) {
      auto at = [&](std::size_t k) { return (o * c + k) * inner + i; };
      double mx = -std::numeric_limits<double>::infinity();
      for (std::size_t k = 0; k < c; ++k) mx = std::fmax(mx, x[at(k)]);
      mpfr_set_zero(s, 1);
      for (std::size_t k = 0; k < c; ++k) {
        mpfr_set_d(t, x[at(k)], MPFR_RNDN);
        mpfr_sub_d(t, t, mx, MPFR_RNDN);
        mpfr_exp(t, t, MPFR_RNDN);
        mpfr_add(s, s, t, MPFR_RNDN);
      }
      mpfr_log(m, s, MPFR_RNDN);  // log sum exp(x - mx)
      for (std::size_t k = 0; k < c; ++k) {
        mpfr_set_d(t, x[at(k)], MPFR_RNDN);
        mpfr_sub_d(t, t, mx, MPFR_RNDN);
        mpfr_sub(t, t, m, MPFR_RNDN);
        if (!log) mpfr_exp(t, t, MPFR_RNDN);
        out[at(k)] = mpfr_get_d(t, MPFR_RNDN);
      }
    }
  mpfr_clears(s, t, m, static_cast<mpfr_ptr>(nullptr));
  return out;
}
}  // namespace

double log_cr(double x) {
  mpfr_t t;
  mpfr_init2(t, 53);
  mpfr_set_d(t, x, MPFR_RNDN);
  mpfr_log(t, t, MPFR_RNDN);
  const double r = mpfr_get_d(t, MPFR_RNDN);
  mpfr_clear(t);
  return r;
}

Values log_softmax(const Values& x, const Shape& shape, std::size_t dim) {
  return softmax_impl(x, shape, dim, true);
}
Values softmax(const Values& x, const Shape& shape, std::size_t dim) {
  return softmax_impl(x, shape, dim, false);
}

void generate_loss(Gen& g) {
  switch (g.loss.id) {
#define LOSSBENCH_LOSS(id, module) \
  case LossId::id:                 \
    generate_##id(g);              \
    return;
#include "lossbench/losses.def"
#undef LOSSBENCH_LOSS
  }
}

}  // namespace lossbench::golden
