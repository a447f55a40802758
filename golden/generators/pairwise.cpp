// Generators of the losses on pairs and triplets of vectors: cosine_embedding_loss,
// triplet_margin_loss, triplet_margin_with_distance_loss. Shapes are (D) or (N, D).
#include <cmath>

#include "family.hpp"

namespace lossbench::golden {
namespace {

Shape batch(const Shape& s) { return s.size() == 1 ? Shape{} : Shape{s[0]}; }

Family vectors() {
  Family f;
  f.smoke_shape = {3, 4};
  f.shapes = {{5}, {3, 5}, {4, 8}, {16, 10}, {2, 3}, {1, 1}};
  f.empty_shapes = {{0, 4}};
  f.special_kinds = {Kind::ties, Kind::threshold, Kind::special, Kind::extreme, Kind::subnormal};
  f.hard_kinds = {Kind::wide};
  f.huge_shapes = {{100, 1000}};
  f.none_shape = [](const Option&, const Shape& s) { return std::optional<Shape>(batch(s)); };
  return f;
}

double param_or(const Option& o, std::string_view name, double def) {
  for (const auto& [n, v] : o.params)
    if (n == name && v.is_number()) return v.get<double>();
  return def;
}

void triplet_errors(Gen& g) {
  {
    auto b = g.start(DType::float32, "mean");
    b.floats("anchor", {2, 3}, normal(g.rng, 6)).floats("positive", {2, 4}, normal(g.rng, 8));
    b.floats("negative", {2, 3}, normal(g.rng, 6));
    g.emit(std::move(b.note("vectors of different sizes").expect_error("shape_error")));
  }
  {
    auto b = g.start(DType::float32, "mean");
    b.floats("anchor", {2, 3}, normal(g.rng, 6)).floats("positive", {3}, normal(g.rng, 3));
    b.floats("negative", {2, 3}, normal(g.rng, 6));
    g.emit(std::move(b.note("inputs of different dimensions").expect_error("shape_error")));
  }
  {
    auto b = g.start(DType::float64, "avg");
    b.floats("anchor", {2, 3}, normal(g.rng, 6)).floats("positive", {2, 3}, normal(g.rng, 6));
    b.floats("negative", {2, 3}, normal(g.rng, 6));
    g.emit(std::move(b.note("invalid reduction").expect_error("value_error")));
  }
}

// anchor, positive, negative for a kind; threshold cases are built by the caller.
void triplet_values(Gen& g, CaseBuilder& b, const Shape& s, Kind k) {
  const auto n = count(s);
  Values a = generic(g, b.dtype(), k, n), p = generic(g, b.dtype(), k, n),
         q = generic(g, b.dtype(), k, n);
  if (k == Kind::ties) {
    p = a;
    b.note("positive equals anchor");
  }
  if (k == Kind::extreme) {
    const double big = std::ldexp(1.0, format_of(b.dtype()).emax / 2 + 2);
    for (auto& v : q) v *= big;
    b.note("squared distances overflow the dtype");
  }
  b.floats("anchor", s, a).floats("positive", s, p).floats("negative", s, q);
}

}  // namespace

void generate_cosine_embedding_loss(Gen& gen) {
  Family f = vectors();
  f.options = {Option{}, Option{{{"margin", 0.5}}, {}}, Option{{{"margin", -0.5}}, {}}};
  f.make = [](Gen& g, CaseBuilder& b, const Option&, const Shape& s, Kind k) {
    const auto n = count(s);
    Values x1 = generic(g, b.dtype(), k, n), x2 = generic(g, b.dtype(), k, n);
    Values y = signs(g.rng, count(batch(s)));
    if (k == Kind::ties) {  // parallel and antiparallel pairs
      for (std::size_t i = 0; i < n; ++i) x2[i] = (i % 2 ? 2.0 : -0.5) * x1[i];
      b.note("parallel vectors");
    }
    if (k == Kind::threshold) {  // orthogonal pairs: cos = 0, the kink when margin is 0
      const std::size_t d = static_cast<std::size_t>(s.back());
      for (std::size_t i = 0; i < n; ++i) {
        x1[i] = (i % d) == 0 ? 1.0 : 0.0;
        x2[i] = (i % d) == 1 % d ? 2.0 : 0.0;
      }
      b.param("margin", 0.0).note("orthogonal vectors, margin 0");
    }
    if (k == Kind::special) {
      for (std::size_t i = 0; i < static_cast<std::size_t>(s.back()); ++i) x1[i] = 0.0;
      b.note("a zero vector");
    }
    b.floats("input1", s, x1).floats("input2", s, x2).floats("target", batch(s), y);
  };
  f.errors = [](Gen& g) {
    {
      auto b = g.start(DType::float32, "mean");
      b.floats("input1", {2, 3}, normal(g.rng, 6)).floats("input2", {2, 4}, normal(g.rng, 8));
      b.floats("target", {2}, {1, -1});
      g.emit(std::move(b.note("vectors of different sizes").expect_error("shape_error")));
    }
    {
      auto b = g.start(DType::float32, "mean");
      b.floats("input1", {2, 3}, normal(g.rng, 6)).floats("input2", {2, 3}, normal(g.rng, 6));
      b.floats("target", {2, 1}, {1, -1});
      g.emit(std::move(b.note("target of the wrong dimension").expect_error("shape_error")));
    }
    {
      auto b = g.start(DType::float64, "avg");
      b.floats("input1", {2, 3}, normal(g.rng, 6)).floats("input2", {2, 3}, normal(g.rng, 6));
      b.floats("target", {2}, {1, -1});
      g.emit(std::move(b.note("invalid reduction").expect_error("value_error")));
    }
  };
  drive(gen, f);
}

void generate_triplet_margin_loss(Gen& gen) {
  Family f = vectors();
  f.options = {Option{},
               Option{{{"p", 1.0}}, {}},
               Option{{{"p", 3.0}, {"swap", true}}, {}},
               Option{{{"margin", 0.5}, {"eps", 0.0}}, {}},
               Option{{{"swap", true}}, {}},
               Option{{{"p", 1.5}, {"margin", 2.0}}, {}}};
  f.make = [](Gen& g, CaseBuilder& b, const Option& o, const Shape& s, Kind k) {
    if (k != Kind::threshold) return triplet_values(g, b, s, k);
    // p = 1, eps = 0 and integer vectors: d(a, p) - d(a, n) + margin = 0 exactly.
    const auto n = count(s);
    const std::size_t d = static_cast<std::size_t>(s.back());
    const double m = param_or(o, "margin", 1.0);
    Values a(n), p(n), q(n);
    for (std::size_t i = 0; i < n; ++i) {
      a[i] = static_cast<double>(g.rng.range(-4, 4));
      p[i] = a[i] + ((i % d) == 0 ? 1.0 : 0.0);
      q[i] = a[i] + ((i % d) == 0 ? 1.0 + m : 0.0);
    }
    b.param("p", 1.0).param("eps", 0.0).param("margin", m).param("swap", false);
    b.note("d(a, p) - d(a, n) + margin = 0 exactly (p = 1, eps = 0)");
    b.floats("anchor", s, a).floats("positive", s, p).floats("negative", s, q);
  };
  f.errors = [](Gen& g) { triplet_errors(g); };
  drive(gen, f);
}

void generate_triplet_margin_with_distance_loss(Gen& gen) {
  Family f = vectors();
  f.options = {Option{}, Option{{{"distance_function", "pairwise_distance"}}, {}},
               Option{{{"distance_function", "cosine"}, {"swap", true}}, {}},
               Option{{{"margin", 0.5}}, {}},
               Option{{{"distance_function", "cosine"}, {"margin", 0.25}}, {}}};
  // cosine_similarity works over dim 1: unbatched vectors become a batch of one.
  auto cosine = [](const Option& o) {
    for (const auto& [n, v] : o.params)
      if (n == "distance_function" && v == "cosine") return true;
    return false;
  };
  f.make = [cosine](Gen& g, CaseBuilder& b, const Option& o, const Shape& s, Kind k) {
    const Shape s2 = cosine(o) && s.size() == 1 ? Shape{1, s[0]} : s;
    triplet_values(g, b, s2, k == Kind::threshold ? Kind::ties : k);
  };
  f.none_shape = [cosine](const Option& o, const Shape& s) {
    return std::optional<Shape>(s.size() == 1 ? (cosine(o) ? Shape{1} : Shape{}) : Shape{s[0]});
  };
  f.errors = [](Gen& g) {
    triplet_errors(g);
    {
      auto b = g.start(DType::float32, "mean");
      b.param("distance_function", "cosine").floats("anchor", {3}, normal(g.rng, 3));
      b.floats("positive", {3}, normal(g.rng, 3)).floats("negative", {3}, normal(g.rng, 3));
      g.emit(std::move(b.note("cosine distance of unbatched vectors (cosine_similarity over dim 1)")
                           .expect_error("index_error")));
    }
    {
      auto b = g.start(DType::float32, "mean");
      b.param("distance_function", "manhattan").floats("anchor", {2, 3}, normal(g.rng, 6));
      b.floats("positive", {2, 3}, normal(g.rng, 6)).floats("negative", {2, 3}, normal(g.rng, 6));
      g.emit(std::move(b.note("unknown distance function").expect_error("value_error")));
    }
  };
  drive(gen, f);
}

}  // namespace lossbench::golden
