#include "testing.hpp"

#include <cmath>
#include <sstream>

namespace lossbench::testing {

std::string tensor(const std::string& dtype, const Shape& shape,
                   const std::vector<double>& values) {
  std::ostringstream s;
  s << R"({"dtype": ")" << dtype << R"(", "shape": )" << shape_string(shape) << R"(, "data": [)";
  for (std::size_t i = 0; i < values.size(); ++i)
    s << (i ? ", " : "") << '"' << hex_string(values[i]) << '"';
  s << "]}";
  return s.str();
}

std::string itensor(const Shape& shape, const std::vector<std::int64_t>& values) {
  std::ostringstream s;
  s << R"({"dtype": "int64", "shape": )" << shape_string(shape) << R"(, "data": [)";
  for (std::size_t i = 0; i < values.size(); ++i) s << (i ? ", " : "") << values[i];
  s << "]}";
  return s.str();
}

Case parse(const std::string& json) { return parse_case(json); }

ref::Certified exact(const std::string& json, bool grad) {
  ref::CertifyOptions o;
  o.grad = grad;
  return ref::certify(parse_case(json), o);
}

double rounded_scalar(const std::string& json) {
  const auto r = exact(json);
  EXPECT_EQ(r.output.values.size(), 1u);
  return r.output.rounded_value(0);
}

double rounded64(const ref::CertifiedValue& v) { return v.rounded[0]; }

std::string exact_scalar(const std::string& json) {
  const auto r = exact(json);
  EXPECT_EQ(r.output.values.size(), 1u);
  return ref::decimal_string(r.output.values.at(0).value);
}

void expect_error(const std::string& json, ErrorKind kind, const std::string& contains) {
  try {
    const Case c = parse_case(json);
    (void)ref::certify(c);
    ADD_FAILURE() << "expected " << to_string(kind) << " containing '" << contains
                  << "' but the case evaluated";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_NE(std::string(e.what()).find(contains), std::string::npos)
        << "message '" << e.what() << "' lacks '" << contains << "'";
  }
}

void expect_gradients_match_finite_differences(const std::string& json, double digits, long bits,
                                               long step_exp) {
  const Case c = parse_case(json);
  const long saved = ref::working_bits();
  ref::set_working_bits(bits);
  const ref::Evaluation analytic = ref::evaluate_once({c, true, nullptr});
  ASSERT_FALSE(analytic.grads.empty()) << "no gradient returned";
  // The upstream gradient, as the reference applies it.
  std::vector<ref::Real> g;
  if (c.grad_output) {
    for (double v : c.grad_output->values) g.emplace_back(v);
  } else {
    g.assign(analytic.output.data.size(), ref::Real(1));
  }
  const ref::Real h = ldexp(ref::Real(1), static_cast<int>(-step_exp));
  auto weighted = [&](const ref::Evaluation& e) {
    std::vector<ref::Real> t;
    for (std::size_t j = 0; j < e.output.data.size(); ++j) t.push_back(e.output.data[j] * g[j]);
    return ref::sum(t);
  };
  for (const auto& [name, grad] : analytic.grads) {
    const InputSpec* spec = c.loss->find_input(name);
    ASSERT_NE(spec, nullptr) << "gradient for unknown input " << name;
    EXPECT_TRUE(spec->differentiable) << name << " is not differentiable in the catalog";
    ASSERT_EQ(grad.shape, c.input(name).shape) << "gradient of " << name << " has the wrong shape";
    ref::Real scale(0);
    for (const auto& v : grad.data) scale = ref::maximum(scale, abs(v));
    if (ref::iszero(scale)) scale = 1;
    for (std::size_t i = 0; i < grad.data.size(); ++i) {
      ref::Perturbation up{name, i, h}, down{name, i, -h};
      const ref::Real fd = (weighted(ref::evaluate_once({c, false, &up})) -
                            weighted(ref::evaluate_once({c, false, &down}))) /
                           (2 * h);
      const ref::Real err = abs(fd - grad.data[i]) / scale;
      EXPECT_LT(err, ref::Real(std::pow(10.0, -digits)))
          << name << "[" << i << "]: analytic " << ref::decimal_string(grad.data[i], 30)
          << " finite difference " << ref::decimal_string(fd, 30);
    }
  }
  ref::set_working_bits(saved);
}

double ulp_error64(double got, const ref::CertifiedValue& exact) {
  const double r = exact.rounded[0];
  if (std::isnan(r) || std::isnan(got)) return (std::isnan(r) && std::isnan(got)) ? 0 : INFINITY;
  if (std::isinf(r) || std::isinf(got)) return r == got ? 0 : INFINITY;
  const int e = std::max(std::ilogb(r == 0 ? 0x1p-1022 : r), -1022);
  const double ulp = std::ldexp(1.0, e - 52);
  ref::Real diff = abs(ref::Real(got) - exact.value);
  return static_cast<double>(diff / ref::Real(ulp));
}

}  // namespace lossbench::testing
