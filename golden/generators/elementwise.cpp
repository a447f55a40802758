// Generators of the elementwise losses: l1, mse, huber, smooth_l1, poisson_nll, gaussian_nll,
// kl_div, binary_cross_entropy (with logits), soft_margin, hinge_embedding, margin_ranking.
#include <cmath>
#include <limits>

#include "family.hpp"

namespace lossbench::golden {
namespace {

Values val(Gen& g, const CaseBuilder& b, Kind k, std::size_t n, double scale = 1.0) {
  return generic(g, b.dtype(), k, n, scale);
}

Family elementwise() {
  Family f;
  f.shapes = {{}, {5}, {3, 4}, {2, 3, 4}, {2, 1, 3, 2}, {12, 8}};
  f.empty_shapes = {{0}, {3, 0}};
  f.special_kinds = {Kind::ties, Kind::threshold, Kind::special, Kind::subnormal, Kind::extreme};
  f.hard_kinds = {Kind::cancel};
  f.huge_shapes = {{320, 320}};
  return f;
}

// The last size of a shape (1 for a 0-d tensor): the class dimension of weights.
Shape last_dim(const Shape& s) { return s.empty() ? Shape{} : Shape{s.back()}; }

// A value next to v in the dtype: v * (1 + k 2^(1-p)).
double nudge(double v, DType dt, int k) {
  return round_to(v * (1.0 + k * std::ldexp(1.0, 1 - format_of(dt).precision)), dt);
}

double param_or(const Option& o, std::string_view name, double def) {
  for (const auto& [n, v] : o.params)
    if (n == name && v.is_number()) return v.get<double>();
  return def;
}

// Errors every loss with same-shape floating inputs `names` has.
void pair_errors(Gen& g, const std::vector<std::string>& names,
                 const std::function<Values(Gen&, std::size_t)>& values) {
  {
    auto b = g.start(DType::float32, "mean");
    b.floats(names[0], {2, 3}, values(g, 6));
    for (std::size_t k = 1; k < names.size(); ++k) b.floats(names[k], {4}, values(g, 4));
    g.emit(std::move(b.note("shapes that do not broadcast").expect_error("shape_error")));
  }
  {
    auto b = g.start(DType::float32, "sum");
    b.floats(names[0], {3}, values(g, 3));
    for (std::size_t k = 1; k < names.size(); ++k)
      b.floats_as(names[k], DType::float64, {3}, values(g, 3));
    g.emit(std::move(b.note("mixed floating dtypes").expect_error("type_error")));
  }
  for (const char* red : {"avg", "batchmean"}) {
    if (g.loss.supports_reduction(red)) continue;
    auto b = g.start(DType::float64, red);
    for (const auto& n : names) b.floats(n, {2}, values(g, 2));
    g.emit(std::move(b.note("invalid reduction").expect_error("value_error")));
  }
}

Values probs(Gen& g, std::size_t n) { return uniform(g.rng, n, 0.0, 1.0); }

}  // namespace

void generate_l1_loss(Gen& gen) {
  Family f = elementwise();
  f.hard_kinds = {Kind::wide};
  f.make = [](Gen& g, CaseBuilder& b, const Option&, const Shape& s, Kind k) {
    const auto n = count(s);
    Values x = val(g, b, k, n), y = val(g, b, k, n);
    if (k == Kind::threshold)
      for (std::size_t i = 0; i < n; i += 2) y[i] = round_to(x[i], b.dtype());  // |x - y| = 0
    b.floats("input", s, x).floats("target", s, y);
  };
  f.errors = [](Gen& g) {
    pair_errors(g, {"input", "target"}, [](Gen& g2, std::size_t n) { return normal(g2.rng, n); });
  };
  drive(gen, f);
}

void generate_mse_loss(Gen& gen) {
  Family f = elementwise();
  f.large_shapes = {{24, 24}, {100, 100}};
  f.hard_kinds = {Kind::wide};
  f.make = [](Gen& g, CaseBuilder& b, const Option&, const Shape& s, Kind k) {
    const auto n = count(s);
    Values x = val(g, b, k, n), y = val(g, b, k, n);
    if (k == Kind::extreme) {  // squares that overflow the dtype
      const double big = std::ldexp(1.0, format_of(b.dtype()).emax / 2 + 1);
      for (std::size_t i = 0; i < n; i += 2) x[i] = g.rng.sign() * big, y[i] = -x[i];
      b.note("squares overflow the dtype");
    }
    if (k == Kind::threshold)
      for (std::size_t i = 0; i < n; i += 2) y[i] = round_to(x[i], b.dtype());
    b.floats("input", s, x).floats("target", s, y);
  };
  f.errors = [](Gen& g) {
    pair_errors(g, {"input", "target"}, [](Gen& g2, std::size_t n) { return normal(g2.rng, n); });
  };
  drive(gen, f);
}

namespace {
// huber and smooth_l1: differences exactly on, just inside and just outside the threshold t.
Family threshold_family(std::string_view pname, std::vector<double> values) {
  Family f = elementwise();
  f.options.clear();
  f.options.push_back(Option{});
  for (double v : values) f.options.push_back(Option{{{std::string(pname), v}}, {}});
  f.hard_kinds = {Kind::wide};
  const std::string name(pname);
  f.make = [name](Gen& g, CaseBuilder& b, const Option& o, const Shape& s, Kind k) {
    const auto n = count(s);
    const DType dt = b.dtype();
    Values x = val(g, b, k, n), y = val(g, b, k, n);
    if (k == Kind::threshold) {
      const double t = round_to(param_or(o, name, 1.0), dt);
      for (std::size_t i = 0; i < n; ++i) {
        x[i] = static_cast<double>(g.rng.range(-16, 16)) / 8.0;
        const double d = nudge(t, dt, static_cast<int>(g.rng.range(-1, 1)));
        y[i] = x[i] - g.rng.sign() * d;
      }
      b.note("|input - target| on and next to " + name);
    }
    if (k == Kind::extreme) {
      for (auto& v : x) v = g.rng.sign() * largest_finite(dt) / 2;
      b.note("differences overflow the dtype");
    }
    b.floats("input", s, x).floats("target", s, y);
  };
  return f;
}
}  // namespace

void generate_huber_loss(Gen& gen) {
  Family f = threshold_family("delta", {0.5, 2.0, 0.1});
  f.errors = [](Gen& g) {
    pair_errors(g, {"input", "target"}, [](Gen& g2, std::size_t n) { return normal(g2.rng, n); });
    for (double d : {0.0, -1.0}) {
      auto b = g.start(DType::float32, "mean");
      b.param("delta", d)
          .floats("input", {3}, normal(g.rng, 3))
          .floats("target", {3}, normal(g.rng, 3));
      g.emit(std::move(b.note("delta must be positive").expect_error("value_error")));
    }
  };
  drive(gen, f);
}

void generate_smooth_l1_loss(Gen& gen) {
  Family f = threshold_family("beta", {0.5, 2.0, 0.0, 0.1});
  f.errors = [](Gen& g) {
    pair_errors(g, {"input", "target"}, [](Gen& g2, std::size_t n) { return normal(g2.rng, n); });
    auto b = g.start(DType::float32, "mean");
    b.param("beta", -0.5)
        .floats("input", {3}, normal(g.rng, 3))
        .floats("target", {3}, normal(g.rng, 3));
    g.emit(std::move(b.note("beta must be non-negative").expect_error("value_error")));
  };
  drive(gen, f);
}

void generate_poisson_nll_loss(Gen& gen) {
  Family f = elementwise();
  f.options = {Option{}, Option{{{"log_input", false}}, {}}, Option{{{"full", true}}, {}},
               Option{{{"log_input", false}, {"full", true}}, {}},
               Option{{{"log_input", false}, {"eps", 0.25}}, {}}};
  f.make = [](Gen& g, CaseBuilder& b, const Option& o, const Shape& s, Kind k) {
    const auto n = count(s);
    bool log_input = true;
    for (const auto& [name, v] : o.params)
      if (name == "log_input") log_input = v.get<bool>();
    Values x = log_input ? val(g, b, k, n, 1.5) : uniform(g.rng, n, 0.0, 4.0);
    Values y(n);
    for (auto& v : y)
      v = g.rng.coin() ? static_cast<double>(g.rng.range(0, 6)) : g.rng.uniform(0, 6);
    switch (k) {
      case Kind::threshold:  // the Stirling term applies where target > 1; eps where rate = 0
        y = grid(g.rng, n, {0.0, 1.0, nudge(1.0, b.dtype(), 1), 2.0, 0.5});
        if (!log_input) sprinkle(g.rng, x, {0.0}, 0.3);
        b.note("targets at 0, 1, next to 1; zero rates");
        break;
      case Kind::extreme:
        if (log_input)
          x = grid(g.rng, n, {-90.0, 90.0, 11.5, 88.75, -745.0});
        else
          x = grid(g.rng, n, {1e-30, 1e30, smallest_subnormal(b.dtype())});
        b.note("exp overflow or tiny rates");
        break;
      case Kind::cancel:  // exp(x) - y x near its minimum x = log y: terms of both signs
        y = uniform(g.rng, n, 3.0, 10.0);
        if (log_input)
          for (std::size_t i = 0; i < n; ++i) x[i] = log_cr(y[i]);
        b.note("terms of both signs");
        break;
      case Kind::special: sprinkle(g.rng, y, {0.0, -0.0, 1.0}, 0.2); break;
      default: break;
    }
    b.floats("input", s, x).floats("target", s, y);
  };
  f.errors = [](Gen& g) {
    pair_errors(g, {"input", "target"},
                [](Gen& g2, std::size_t n) { return uniform(g2.rng, n, 0, 3); });
  };
  drive(gen, f);
}

void generate_gaussian_nll_loss(Gen& gen) {
  Family f = elementwise();
  f.options = {Option{}, Option{{{"full", true}}, {"var_last1"}},
               Option{{{"eps", 0.25}}, {"var_drop"}}, Option{{}, {"var_drop"}},
               Option{{{"full", true}, {"eps", 0.125}}, {}}};
  f.make = [](Gen& g, CaseBuilder& b, const Option& o, const Shape& s, Kind k) {
    const auto n = count(s);
    Shape vs = s;
    if (!s.empty() && o.has("var_last1")) vs.back() = 1;
    if (!s.empty() && o.has("var_drop")) vs.pop_back();
    const auto nv = count(vs);
    Values x = val(g, b, k, n), y = val(g, b, k, n), v = uniform(g.rng, nv, 0.1, 3.0);
    if (k == Kind::threshold) {  // the variance clamp at eps
      const double eps = round_to(param_or(o, "eps", 1e-6), b.dtype());
      v = grid(g.rng, nv,
               {eps, nudge(eps, b.dtype(), 1), nudge(eps, b.dtype(), -1), 0.0, eps / 2, 1.0});
      b.note("variances on and next to the eps clamp, and 0");
    }
    if (k == Kind::extreme) v = grid(g.rng, nv, {1e-30, 1e30, 1.0});
    if (k == Kind::subnormal)
      v = generic(g, b.dtype(), Kind::subnormal, nv), v = [&] {
        for (auto& e : v) e = std::fabs(e);
        return v;
      }();
    if (k == Kind::cancel) {  // log var < 0 against (x - y)^2 / var: terms of both signs
      v = uniform(g.rng, nv, 0.05, 0.5);
      b.note("terms of both signs");
    }
    b.floats("input", s, x).floats("target", s, y).floats("var", vs, v);
    if (vs != s) b.note("var shape " + shape_string(vs));
  };
  f.errors = [](Gen& g) {
    pair_errors(g, {"input", "target", "var"},
                [](Gen& g2, std::size_t n) { return uniform(g2.rng, n, 0.5, 2); });
    {
      auto b = g.start(DType::float64, "mean");
      b.floats("input", {2, 3}, normal(g.rng, 6)).floats("target", {2, 3}, normal(g.rng, 6));
      b.floats("var", {2, 3}, {1, 1, -0.5, 1, 1, 1});
      g.emit(std::move(b.note("negative variance").expect_error("value_error")));
    }
    {
      auto b = g.start(DType::float64, "mean");
      b.floats("input", {2, 3}, normal(g.rng, 6)).floats("target", {2, 3}, normal(g.rng, 6));
      b.floats("var", {2, 2}, {1, 1, 1, 1});
      g.emit(std::move(b.note("var of incorrect size").expect_error("shape_error")));
    }
  };
  drive(gen, f);
}

void generate_kl_div(Gen& gen) {
  Family f = elementwise();
  f.options = {Option{}, Option{{{"log_target", true}}, {}}};
  f.make = [](Gen& g, CaseBuilder& b, const Option& o, const Shape& s, Kind k) {
    const auto n = count(s);
    const bool log_target = o.params.size() == 1;
    const std::size_t dim = s.empty() ? 0 : s.size() - 1;
    Values z = normal(g.rng, n, 1.5);
    Values x =
        s.empty() ? Values{-g.rng.uniform(0, 3)} : log_softmax(normal(g.rng, n, 1.5), s, dim);
    Values y = s.empty() ? Values{g.rng.uniform(0, 1)} : softmax(z, s, dim);
    switch (k) {
      case Kind::wide: x = wide(g.rng, n, b.dtype()); break;
      case Kind::cancel:  // target ~ exp(input): the terms cancel in the sum
        if (!s.empty()) {
          x = log_softmax(z, s, dim);
          for (auto& v : x) v = v * (1 + g.rng.uniform(-1e-3, 1e-3));
        }
        b.note("input close to log(target): terms cancel");
        break;
      case Kind::threshold:
      case Kind::ties:
        sprinkle(g.rng, y, {0.0, 1.0}, 0.3);
        b.note("targets 0 and 1");
        break;
      case Kind::extreme:
        sprinkle(g.rng, x, {-1e4, -100.0, -std::numeric_limits<double>::infinity()}, 0.3);
        sprinkle(g.rng, y, {1e-30, 0.0}, 0.3);
        b.note("very negative log-probabilities, tiny targets");
        break;
      case Kind::subnormal:
        sprinkle(g.rng, y, {smallest_subnormal(b.dtype()), smallest_normal(b.dtype()) / 4}, 0.5);
        break;
      case Kind::special: sprinkle(g.rng, x, special_values(b.dtype()), 0.2); break;
      default: break;
    }
    if (log_target)
      for (auto& v : y) v = log_cr(v);
    b.floats("input", s, x).floats("target", s, y);
  };
  f.errors = [](Gen& g) {
    pair_errors(g, {"input", "target"},
                [](Gen& g2, std::size_t n) { return uniform(g2.rng, n, 0.1, 0.9); });
  };
  drive(gen, f);
}

void generate_binary_cross_entropy(Gen& gen) {
  Family f = elementwise();
  f.options = {Option{}, Option{{}, {"weight"}}, Option{{}, {"weight_full"}}};
  f.make = [](Gen& g, CaseBuilder& b, const Option& o, const Shape& s, Kind k) {
    const auto n = count(s);
    const DType dt = b.dtype();
    Values x = uniform(g.rng, n, 0.02, 0.98), y = probs(g, n);
    switch (k) {
      case Kind::ties:
        y = grid(g.rng, n, {0.0, 1.0});
        x = grid(g.rng, n, {0.25, 0.5, 0.75});
        break;
      case Kind::threshold:  // log clamped at -100: x around exp(-100) and 1 - tiny
        x = grid(g.rng, n, {0.0, 1.0, 3.720075976020836e-44, 3.7e-44, 3.8e-44, nudge(1.0, dt, -1)});
        b.note("log clamp at -100: inputs 0, 1, near exp(-100), next to 1");
        break;
      case Kind::extreme: x = grid(g.rng, n, {0.0, 1.0, smallest_subnormal(dt), 1e-30}); break;
      case Kind::subnormal:
        x = generic(g, dt, Kind::subnormal, n);
        for (auto& v : x) v = std::fabs(v);
        break;
      case Kind::special:
        sprinkle(g.rng, y, {0.0, 1.0, -0.0}, 0.3);
        sprinkle(g.rng, x, {-0.0, 0.0, 1.0}, 0.2);
        break;
      case Kind::cancel: break;
      default: break;
    }
    b.floats("input", s, x).floats("target", s, y);
    if (o.has("weight"))
      b.floats("weight", last_dim(s), uniform(g.rng, count(last_dim(s)), 0.25, 2));
    if (o.has("weight_full")) b.floats("weight", s, uniform(g.rng, n, 0.0, 2));
  };
  f.hard_kinds = {};
  f.errors = [](Gen& g) {
    pair_errors(g, {"input", "target"},
                [](Gen& g2, std::size_t n) { return uniform(g2.rng, n, 0.1, 0.9); });
    auto b = g.start(DType::float32, "mean");
    b.floats("input", {3}, {0.5, 1.5, 0.25}).floats("target", {3}, {0, 1, 1});
    g.emit(std::move(b.note("input outside [0, 1]").expect_error("value_error")));
    auto d = g.start(DType::float64, "sum");
    d.floats("input", {3}, {0.5, std::nan(""), 0.25}).floats("target", {3}, {0, 1, 1});
    g.emit(
        std::move(d.note("NaN input (fails PyTorch's range check)").expect_error("value_error")));
    auto e = g.start(DType::float64, "sum");
    e.floats("input", {3}, {0.5, 0.5, 0.25}).floats("target", {3}, {0, std::nan(""), 1});
    g.emit(std::move(e.note("NaN target (fails the range check)").expect_error("value_error")));
    auto c = g.start(DType::float32, "mean");
    c.floats("input", {2, 3}, uniform(g.rng, 6, 0.1, 0.9))
        .floats("target", {2, 3}, uniform(g.rng, 6, 0, 1));
    c.floats("weight", {2}, {1, 2});
    g.emit(std::move(c.note("weight does not broadcast").expect_error("shape_error")));
  };
  drive(gen, f);
}

void generate_binary_cross_entropy_with_logits(Gen& gen) {
  Family f = elementwise();
  f.options = {Option{}, Option{{}, {"weight"}}, Option{{}, {"pos_weight"}},
               Option{{}, {"weight_full", "pos_weight"}}};
  f.make = [](Gen& g, CaseBuilder& b, const Option& o, const Shape& s, Kind k) {
    const auto n = count(s);
    Values x = val(g, b, k, n, 3.0), y = probs(g, n);
    switch (k) {
      case Kind::ties:
      case Kind::threshold:
        x = grid(g.rng, n, {0.0, -0.0, 1.0, -1.0});
        y = grid(g.rng, n, {0.0, 1.0, 0.5});
        break;
      case Kind::extreme:
        x = grid(g.rng, n, {-1e4, 1e4, -100.0, 100.0, -40.0, 40.0, 20.0, -20.0, 60000.0});
        y = grid(g.rng, n, {0.0, 1.0});
        b.note("extreme logits");
        break;
      case Kind::cancel: y = grid(g.rng, n, {0.0, 1.0}); break;
      default: break;
    }
    b.floats("input", s, x).floats("target", s, y);
    if (o.has("weight"))
      b.floats("weight", last_dim(s), uniform(g.rng, count(last_dim(s)), 0.25, 2));
    if (o.has("weight_full")) b.floats("weight", s, uniform(g.rng, n, 0.0, 2));
    if (o.has("pos_weight"))
      b.floats("pos_weight", last_dim(s), uniform(g.rng, count(last_dim(s)), 0.5, 4));
  };
  f.hard_kinds = {};
  f.errors = [](Gen& g) {
    pair_errors(g, {"input", "target"}, [](Gen& g2, std::size_t n) { return normal(g2.rng, n); });
    auto b = g.start(DType::float32, "mean");
    b.floats("input", {2, 3}, normal(g.rng, 6)).floats("target", {2, 3}, probs(g, 6));
    b.floats("pos_weight", {2}, {1, 2});
    g.emit(std::move(b.note("pos_weight does not broadcast").expect_error("shape_error")));
  };
  drive(gen, f);
}

void generate_soft_margin_loss(Gen& gen) {
  Family f = elementwise();
  f.hard_kinds = {};
  f.make = [](Gen& g, CaseBuilder& b, const Option&, const Shape& s, Kind k) {
    const auto n = count(s);
    Values x = val(g, b, k, n, 2.0), y = signs(g.rng, n);
    if (k == Kind::extreme) x = grid(g.rng, n, {-1e4, 1e4, -100.0, 100.0, 40.0, -40.0, 60000.0});
    if (k == Kind::threshold) x = grid(g.rng, n, {0.0, -0.0});
    b.floats("input", s, x).floats("target", s, y);
  };
  f.errors = [](Gen& g) {
    pair_errors(g, {"input", "target"}, [](Gen& g2, std::size_t n) { return signs(g2.rng, n); });
  };
  drive(gen, f);
}

void generate_hinge_embedding_loss(Gen& gen) {
  Family f = elementwise();
  f.options = {Option{}, Option{{{"margin", 0.5}}, {}}, Option{{{"margin", 2.0}}, {}},
               Option{{{"margin", -1.0}}, {}}};
  f.make = [](Gen& g, CaseBuilder& b, const Option& o, const Shape& s, Kind k) {
    const auto n = count(s);
    Values x = val(g, b, k, n, 1.5), y = signs(g.rng, n);
    if (k == Kind::threshold) {
      const double m = round_to(param_or(o, "margin", 1.0), b.dtype());
      x = grid(g.rng, n, {m, nudge(m, b.dtype(), 1), nudge(m, b.dtype(), -1), 0.0});
      b.note("input on and next to the margin");
    }
    if (k == Kind::special) sprinkle(g.rng, y, {0.0}, 0.2), b.note("targets 0 as well as +-1");
    if (k == Kind::cancel) x = normal(g.rng, n, 1.0, 0.0), b.note("terms of both signs");
    b.floats("input", s, x).floats("target", s, y);
  };
  f.errors = [](Gen& g) {
    pair_errors(g, {"input", "target"}, [](Gen& g2, std::size_t n) { return signs(g2.rng, n); });
  };
  drive(gen, f);
}

void generate_margin_ranking_loss(Gen& gen) {
  Family f = elementwise();
  f.options = {Option{}, Option{{{"margin", 0.5}}, {}}, Option{{{"margin", 1.0}}, {}},
               Option{{{"margin", -0.5}}, {}}};
  f.hard_kinds = {};
  f.make = [](Gen& g, CaseBuilder& b, const Option& o, const Shape& s, Kind k) {
    const auto n = count(s);
    Values x1 = val(g, b, k, n), x2 = val(g, b, k, n), y = signs(g.rng, n);
    if (k == Kind::threshold) {  // -y (x1 - x2) + margin = 0 exactly
      const double m = round_to(param_or(o, "margin", 0.0), b.dtype());
      for (std::size_t i = 0; i < n; ++i) {
        x2[i] = static_cast<double>(g.rng.range(-8, 8)) / 4.0;
        x1[i] = x2[i] + y[i] * m;
      }
      b.note("-target (input1 - input2) + margin = 0");
    }
    b.floats("input1", s, x1).floats("input2", s, x2).floats("target", s, y);
  };
  f.errors = [](Gen& g) {
    pair_errors(g, {"input1", "input2", "target"},
                [](Gen& g2, std::size_t n) { return signs(g2.rng, n); });
    auto b = g.start(DType::float32, "mean");
    b.floats("input1", {3}, normal(g.rng, 3)).floats("input2", {3}, normal(g.rng, 3));
    b.floats("target", {1, 3}, signs(g.rng, 3));
    g.emit(std::move(b.note("inputs of different dimensions").expect_error("shape_error")));
  };
  drive(gen, f);
}

}  // namespace lossbench::golden
