// Generators of the classification losses: cross_entropy, nll_loss, multilabel_margin_loss,
// multi_margin_loss, multilabel_soft_margin_loss. Shapes are the input's: (C), (N, C) or
// (N, C, d1, ...); the class dimension is 1 (0 for an unbatched input).
#include <cmath>
#include <limits>

#include "family.hpp"

namespace lossbench::golden {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

std::size_t class_dim(const Shape& s) { return s.size() == 1 ? 0 : 1; }
std::int64_t classes(const Shape& s) { return s[class_dim(s)]; }
// The shape without its class dimension: the index target's, and the output's for "none".
Shape without_class(const Shape& s) {
  Shape t = s;
  t.erase(t.begin() + static_cast<std::ptrdiff_t>(class_dim(s)));
  return t;
}

std::vector<std::int64_t> labels(Gen& g, std::size_t n, std::int64_t c) {
  std::vector<std::int64_t> t(n);
  for (auto& v : t) v = g.rng.range(0, c - 1);
  return t;
}

ojson param_of(const Option& o, std::string_view name, ojson def) {
  for (const auto& [n, v] : o.params)
    if (n == name) return v;
  return def;
}

Family classification() {
  Family f;
  f.smoke_shape = {3, 4};
  f.shapes = {{5}, {3, 5}, {2, 4, 3}, {2, 3, 2, 2}, {16, 10}, {4, 6}};
  f.empty_shapes = {{0, 4}};
  f.special_kinds = {Kind::ties, Kind::threshold, Kind::special, Kind::extreme, Kind::subnormal};
  f.hard_kinds = {Kind::wide};
  f.huge_shapes = {{1000, 100}};
  f.none_shape = [](const Option&, const Shape& s) {
    return std::optional<Shape>(without_class(s));
  };
  return f;
}

// Logits of a kind.
Values logits(Gen& g, const CaseBuilder& b, Kind k, std::size_t n) {
  switch (k) {
    case Kind::ties: return grid(g.rng, n, {0.0, 1.0});
    case Kind::extreme: {
      Values v = normal(g.rng, n, 2.0);
      sprinkle(g.rng, v, {-1e4, 1e4, -kInf, 88.0, -200.0}, 0.3);
      return v;
    }
    default: return generic(g, b.dtype(), k, n, 2.0);
  }
}

void bad_reduction(Gen& g, const std::function<void(CaseBuilder&)>& fill) {
  auto b = g.start(DType::float64, "avg");
  fill(b);
  g.emit(std::move(b.note("invalid reduction").expect_error("value_error")));
}

// cross_entropy and nll_loss share their index-target cases.
void index_target_errors(Gen& g, bool log_probs) {
  auto in = [&](CaseBuilder& b, const Shape& s) {
    Values x = normal(g.rng, count(s));
    b.floats("input", s, log_probs ? log_softmax(x, s, class_dim(s)) : x);
  };
  {
    auto b = g.start(DType::float32, "mean");
    in(b, {2, 3});
    b.ints("target", {2}, {0, 3});
    g.emit(std::move(b.note("class index out of range").expect_error("index_error")));
  }
  {
    auto b = g.start(DType::float32, "sum");
    in(b, {2, 3});
    b.ints("target", {2}, {-2, 1});
    g.emit(std::move(b.note("negative class index").expect_error("index_error")));
  }
  {
    auto b = g.start(DType::float64, "mean");
    in(b, {2, 3});
    b.ints("target", {3}, {0, 1, 2});
    g.emit(std::move(b.note("batch sizes differ").expect_error("shape_error")));
  }
  {
    auto b = g.start(DType::float64, "mean");
    in(b, {2, 3});
    b.ints("target", {2}, {0, 1}).floats("weight", {2}, {1, 2});
    g.emit(std::move(b.note("weight of the wrong size").expect_error("shape_error")));
  }
  {
    auto b = g.start(DType::float32, "none");
    in(b, {2, 3, 2});
    b.ints("target", {2, 3}, {0, 1, 2, 0, 1, 2});
    g.emit(std::move(b.note("spatial sizes differ").expect_error("shape_error")));
  }
  bad_reduction(g, [&](CaseBuilder& b) {
    in(b, {2, 3});
    b.ints("target", {2}, {0, 1});
  });
}

}  // namespace

void generate_cross_entropy(Gen& gen) {
  Family f = classification();
  f.large_shapes = {{64, 16}, {1000, 10}};
  f.options = {Option{},
               Option{{}, {"weight"}},
               Option{{{"ignore_index", 1}}, {}},
               Option{{{"label_smoothing", 0.25}}, {}},
               Option{{{"ignore_index", 0}, {"label_smoothing", 0.1}}, {"weight"}},
               Option{{}, {"probs"}},
               Option{{{"label_smoothing", 0.2}}, {"probs", "weight"}}};
  f.make = [](Gen& g, CaseBuilder& b, const Option& o, const Shape& s, Kind k) {
    const auto n = count(s);
    const auto c = classes(s);
    const Shape ts = without_class(s);
    b.floats("input", s, logits(g, b, k, n));
    if (o.has("probs")) {
      Values t = softmax(normal(g.rng, n, 1.5), s, class_dim(s));
      if (k == Kind::ties || k == Kind::threshold) t = grid(g.rng, n, {0.0, 0.5, 1.0});
      if (k == Kind::subnormal) sprinkle(g.rng, t, {smallest_subnormal(b.dtype()), 0.0}, 0.4);
      b.floats("target", s, t).note("class probabilities");
    } else {
      auto t = labels(g, count(ts), c);
      if (k == Kind::threshold) {  // every target ignored
        const auto ig = param_of(o, "ignore_index", -100).get<std::int64_t>();
        for (auto& v : t) v = ig;
        b.note("every target is ignore_index");
      }
      b.ints("target", ts, t);
    }
    if (o.has("weight")) {
      Values w = uniform(g.rng, static_cast<std::size_t>(c), 0.25, 2.0);
      if (k == Kind::special) w[0] = 0.0;
      b.floats("weight", {c}, w);
    }
  };
  f.errors = [](Gen& g) {
    index_target_errors(g, false);
    {
      auto b = g.start(DType::float64, "mean");
      b.param("label_smoothing", 1.5)
          .floats("input", {2, 3}, normal(g.rng, 6))
          .ints("target", {2}, {0, 1});
      g.emit(std::move(b.note("label_smoothing above 1").expect_error("value_error")));
    }
    {
      auto b = g.start(DType::float64, "mean");
      b.floats("input", {2, 3}, normal(g.rng, 6))
          .floats("target", {2, 4}, uniform(g.rng, 8, 0, 0.25));
      g.emit(std::move(b.note("probability target of another shape").expect_error("shape_error")));
    }
  };
  drive(gen, f);
}

void generate_nll_loss(Gen& gen) {
  Family f = classification();
  f.options = {Option{}, Option{{}, {"weight"}}, Option{{{"ignore_index", 1}}, {}},
               Option{{{"ignore_index", 0}}, {"weight"}}};
  f.make = [](Gen& g, CaseBuilder& b, const Option& o, const Shape& s, Kind k) {
    const auto n = count(s);
    const auto c = classes(s);
    const Shape ts = without_class(s);
    Values x = logits(g, b, k, n);
    if (k == Kind::typical || k == Kind::large || k == Kind::threshold)
      x = log_softmax(x, s, class_dim(s));
    b.floats("input", s, x);
    auto t = labels(g, count(ts), c);
    if (k == Kind::threshold) {
      const auto ig = param_of(o, "ignore_index", -100).get<std::int64_t>();
      for (auto& v : t) v = ig;
      b.note("every target is ignore_index");
    }
    b.ints("target", ts, t);
    if (o.has("weight")) {
      Values w = uniform(g.rng, static_cast<std::size_t>(c), 0.25, 2.0);
      if (k == Kind::special) w[0] = 0.0;
      b.floats("weight", {c}, w);
    }
  };
  f.errors = [](Gen& g) { index_target_errors(g, true); };
  drive(gen, f);
}

void generate_multilabel_margin_loss(Gen& gen) {
  Family f = classification();
  f.shapes = {{5}, {3, 5}, {4, 6}, {16, 10}, {2, 3}};
  f.empty_shapes = {};
  f.hard_kinds = {Kind::wide};
  f.make = [](Gen& g, CaseBuilder& b, const Option&, const Shape& s, Kind k) {
    const auto n = count(s);
    const auto c = classes(s);
    const std::size_t rows = s.size() == 1 ? 1 : static_cast<std::size_t>(s[0]);
    Values x = logits(g, b, k, n);
    if (k == Kind::ties || k == Kind::threshold) {
      x = grid(g.rng, n, {0.0, 1.0, 2.0, 0.5});
      b.note("hinge arguments exactly 0 (kinks)");
    }
    std::vector<std::int64_t> t(n, -1);
    for (std::size_t r = 0; r < rows; ++r) {
      std::vector<std::int64_t> perm(static_cast<std::size_t>(c));
      for (std::int64_t i = 0; i < c; ++i) perm[static_cast<std::size_t>(i)] = i;
      for (std::size_t i = perm.size(); i > 1; --i) std::swap(perm[i - 1], perm[g.rng.below(i)]);
      std::int64_t m = g.rng.range(0, c);
      if (k == Kind::special && r == 0) m = 0;  // a row without targets
      for (std::int64_t j = 0; j < m; ++j)
        t[r * static_cast<std::size_t>(c) + static_cast<std::size_t>(j)] =
            perm[static_cast<std::size_t>(j)];
      if (k == Kind::special && m + 1 < c) {  // entries after the first -1 are ignored
        t[r * static_cast<std::size_t>(c) + static_cast<std::size_t>(m + 1)] = perm[0];
        b.note("targets after the terminating -1");
      }
    }
    b.floats("input", s, x).ints("target", s, t);
  };
  f.errors = [](Gen& g) {
    {
      auto b = g.start(DType::float32, "mean");
      b.floats("input", {2, 3}, normal(g.rng, 6)).ints("target", {2, 3}, {0, 3, -1, 1, -1, -1});
      g.emit(std::move(b.note("target class out of range").expect_error("index_error")));
    }
    {
      auto b = g.start(DType::float32, "mean");
      b.floats("input", {2, 3}, normal(g.rng, 6)).ints("target", {2, 2}, {0, -1, 1, -1});
      g.emit(std::move(b.note("target of another shape").expect_error("shape_error")));
    }
    {
      auto b = g.start(DType::float32, "mean");
      b.floats("input", {2, 3, 2}, normal(g.rng, 12))
          .ints("target", {2, 3, 2}, std::vector<std::int64_t>(12, -1));
      g.emit(std::move(b.note("3-d input").expect_error("shape_error")));
    }
    for (const char* red : {"mean", "sum"}) {
      auto b = g.start(DType::float32, red);
      b.floats("input", {0, 4}, {}).ints("target", {0, 4}, {});
      g.emit(std::move(
          b.note("empty batch, reduced (undefined in PyTorch 2.2)").expect_error("value_error")));
    }
    bad_reduction(g, [&](CaseBuilder& b) {
      b.floats("input", {2, 3}, normal(g.rng, 6)).ints("target", {2, 3}, {0, -1, -1, 1, -1, -1});
    });
  };
  drive(gen, f);
}

void generate_multi_margin_loss(Gen& gen) {
  Family f = classification();
  f.shapes = {{5}, {3, 5}, {4, 6}, {16, 10}, {2, 3}};
  f.empty_shapes = {};
  f.options = {Option{}, Option{{{"p", 2}}, {}}, Option{{{"margin", 0.5}}, {}},
               Option{{}, {"weight"}}, Option{{{"p", 2}, {"margin", 2.0}}, {"weight"}}};
  f.make = [](Gen& g, CaseBuilder& b, const Option& o, const Shape& s, Kind k) {
    const auto n = count(s);
    const auto c = classes(s);
    Values x = logits(g, b, k, n);
    if (k == Kind::ties || k == Kind::threshold) {
      x = grid(g.rng, n, {0.0, 0.5, 1.0, 2.0, -1.0});
      b.note("hinge arguments exactly 0 (kinks)");
    }
    (void)o;
    b.floats("input", s, x).ints("target", without_class(s), labels(g, count(without_class(s)), c));
    if (o.has("weight"))
      b.floats("weight", {c}, uniform(g.rng, static_cast<std::size_t>(c), 0.25, 2.0));
  };
  f.errors = [](Gen& g) {
    {
      auto b = g.start(DType::float32, "mean");
      b.param("p", 3).floats("input", {2, 3}, normal(g.rng, 6)).ints("target", {2}, {0, 1});
      g.emit(std::move(b.note("p other than 1 or 2").expect_error("value_error")));
    }
    {
      auto b = g.start(DType::float32, "mean");
      b.floats("input", {2, 3}, normal(g.rng, 6)).ints("target", {2}, {0, 3});
      g.emit(std::move(b.note("class index out of range").expect_error("index_error")));
    }
    {
      auto b = g.start(DType::float32, "mean");
      b.floats("input", {2, 3}, normal(g.rng, 6)).ints("target", {3}, {0, 1, 2});
      g.emit(std::move(b.note("batch sizes differ").expect_error("shape_error")));
    }
    {
      auto b = g.start(DType::float32, "mean");
      b.floats("input", {0, 3}, {}).ints("target", {0}, {});
      g.emit(
          std::move(b.note("empty batch (undefined in PyTorch 2.2)").expect_error("value_error")));
    }
    bad_reduction(g, [&](CaseBuilder& b) {
      b.floats("input", {2, 3}, normal(g.rng, 6)).ints("target", {2}, {0, 1});
    });
  };
  drive(gen, f);
}

void generate_multilabel_soft_margin_loss(Gen& gen) {
  Family f = classification();
  f.shapes = {{3, 5}, {4, 6}, {16, 10}, {1, 1}, {5}, {2, 7}};
  f.options = {Option{}, Option{{}, {"weight"}}};
  f.hard_kinds = {Kind::wide};
  f.make = [](Gen& g, CaseBuilder& b, const Option& o, const Shape& s, Kind k) {
    const auto n = count(s);
    const auto c = s.back();
    Values x = logits(g, b, k, n);
    if (k == Kind::extreme) x = grid(g.rng, n, {-1e4, 1e4, -100.0, 100.0, 40.0, -40.0});
    Values y = k == Kind::typical || k == Kind::large ? grid(g.rng, n, {0.0, 1.0})
                                                      : uniform(g.rng, n, 0.0, 1.0);
    b.floats("input", s, x).floats("target", s, y);
    if (o.has("weight"))
      b.floats("weight", {c}, uniform(g.rng, static_cast<std::size_t>(c), 0.25, 2.0));
  };
  f.none_shape = [](const Option&, const Shape& s) {
    return std::optional<Shape>(s.size() == 1 ? Shape{} : Shape{s[0]});
  };
  f.errors = [](Gen& g) {
    {
      auto b = g.start(DType::float32, "mean");
      b.floats("input", {2, 3}, normal(g.rng, 6)).floats("target", {2, 4}, grid(g.rng, 8, {0, 1}));
      g.emit(std::move(b.note("target of another shape").expect_error("shape_error")));
    }
    {
      auto b = g.start(DType::float32, "mean");
      b.floats("input", {2, 3}, normal(g.rng, 6)).floats("target", {2, 3}, grid(g.rng, 6, {0, 1}));
      b.floats_as("weight", DType::float64, {3}, {1, 1, 1});
      g.emit(std::move(b.note("mixed floating dtypes").expect_error("type_error")));
    }
    bad_reduction(g, [&](CaseBuilder& b) {
      b.floats("input", {2, 3}, normal(g.rng, 6)).floats("target", {2, 3}, grid(g.rng, 6, {0, 1}));
    });
  };
  drive(gen, f);
}

}  // namespace lossbench::golden
