// Generator of ctc_loss. A "shape" here is the descriptor (T, N, C, S): input length, batch,
// classes (blank included) and the longest target.
#include <algorithm>
#include <cmath>
#include <limits>

#include "family.hpp"

namespace lossbench::golden {
namespace {

using I = std::int64_t;

// The shortest input a target needs: its length plus one blank between repeated labels.
I needed(const std::vector<I>& t) {
  I r = static_cast<I>(t.size());
  for (std::size_t i = 1; i < t.size(); ++i) r += t[i] == t[i - 1];
  return r;
}

}  // namespace

void generate_ctc_loss(Gen& gen) {
  Family f;
  f.options = {Option{},
               Option{{{"zero_infinity", true}}, {}},
               Option{{}, {"concat"}},
               Option{{}, {"blank_last"}},
               Option{{}, {"unbatched"}},
               Option{{{"zero_infinity", true}}, {"concat", "blank_last"}}};
  f.smoke_shape = {6, 2, 4, 3};
  f.shapes = {{6, 2, 4, 3}, {10, 3, 5, 4}, {5, 1, 3, 2}, {12, 4, 6, 5}, {8, 2, 3, 3}};
  f.empty_shapes = {};
  f.dtypes = {DType::float64, DType::float32};  // CTC on the CPU: float32 and float64 only
  f.special_kinds = {Kind::ties, Kind::threshold, Kind::special, Kind::extreme};
  f.hard_kinds = {Kind::typical};
  f.hard_shape = {60, 2, 8, 20};
  f.large_shapes = {{300, 2, 20, 100}};  // 12000 log-probabilities, targets of up to 100
  f.huge_shapes = {{1000, 4, 30, 300}};
  f.none_shape = [](const Option& o, const Shape& d) {
    return std::optional<Shape>(o.has("unbatched") ? Shape{} : Shape{d[1]});
  };
  f.make = [](Gen& g, CaseBuilder& b, const Option& o, const Shape& d, Kind k) {
    const I T = d[0], C = d[2], S = d[3];
    const I N = o.has("unbatched") ? 1 : d[1];
    const I blank = o.has("blank_last") ? C - 1 : 0;
    if (o.has("blank_last")) b.param("blank", blank);
    const Shape ls = o.has("unbatched") ? Shape{T, C} : Shape{T, N, C};
    Values lp = log_softmax(normal(g.rng, count(ls), 1.5), ls, ls.size() - 1);
    if (k == Kind::extreme) {
      sprinkle(g.rng, lp, {-std::numeric_limits<double>::infinity(), -1e4, -200.0}, 0.25);
      b.note("log-probabilities -inf and very negative");
    }
    if (k == Kind::special) {
      lp = normal(g.rng, count(ls), 2.0);
      b.note("unnormalised log-probabilities");
    }
    std::vector<std::vector<I>> targets(static_cast<std::size_t>(N));
    std::vector<I> in_len(static_cast<std::size_t>(N)), tg_len(static_cast<std::size_t>(N));
    for (I n = 0; n < N; ++n) {
      I len = g.rng.range(1, S);
      if (k == Kind::threshold && n == 0) len = S;
      auto& t = targets[static_cast<std::size_t>(n)];
      for (I j = 0; j < len; ++j) {
        I l = g.rng.range(0, C - 2);
        if (l >= blank) ++l;  // skip the blank
        if (k == Kind::ties && j > 0 && g.rng.coin()) l = t.back();
        t.push_back(l);
      }
      const I need = needed(t);
      I il = n == 0 ? T : g.rng.range(std::min(need, T), T);
      if (k == Kind::threshold && n == 0) il = std::max<I>(1, need - 1);  // infeasible
      in_len[static_cast<std::size_t>(n)] = il;
      tg_len[static_cast<std::size_t>(n)] = len;
      if (need > il) b.note("infeasible target (loss inf)");
    }
    if (k == Kind::ties) b.note("repeated labels");
    b.floats("log_probs", ls, lp);
    if (o.has("unbatched")) {
      b.ints("targets", {tg_len[0]}, targets[0]);
      b.ints("input_lengths", {}, {in_len[0]}).ints("target_lengths", {}, {tg_len[0]});
      return;
    }
    if (o.has("concat")) {
      std::vector<I> flat;
      for (const auto& t : targets) flat.insert(flat.end(), t.begin(), t.end());
      b.ints("targets", {static_cast<I>(flat.size())}, flat);
      b.note("concatenated targets");
    } else {
      std::vector<I> padded(static_cast<std::size_t>(N * S), blank == 0 ? 1 : 0);
      for (I n = 0; n < N; ++n)
        std::copy(targets[static_cast<std::size_t>(n)].begin(),
                  targets[static_cast<std::size_t>(n)].end(),
                  padded.begin() + static_cast<std::ptrdiff_t>(n * S));
      b.ints("targets", {N, S}, padded);
    }
    b.ints("input_lengths", {N}, in_len).ints("target_lengths", {N}, tg_len);
  };
  f.errors = [](Gen& g) {
    auto base = [&](CaseBuilder& b) {
      const Shape ls{5, 2, 4};
      b.floats("log_probs", ls, log_softmax(normal(g.rng, 40), ls, 2));
    };
    struct E {
      std::vector<I> targets, in_len, tg_len;
      const char* note;
      const char* cls;
    };
    const E errs[] = {
        {{1, 2, 4, 1, 0, 0}, {5, 5}, {3, 1}, "target label out of range", "index_error"},
        {{1, 2, 3, 1, 0, 0}, {6, 5}, {3, 1}, "input length longer than the input", "value_error"},
        {{1, 2, 3, 1, 0, 0}, {5, 5}, {3, -1}, "negative target length", "value_error"},
        {{1, 2, 3, 1, 0, 0},
         {5, 5},
         {4, 1},
         "target length longer than the padded targets",
         "shape_error"},
    };
    for (const auto& e : errs) {
      auto b = g.start(DType::float32, "mean");
      base(b);
      b.ints("targets", {2, 3}, e.targets).ints("input_lengths", {2}, e.in_len);
      b.ints("target_lengths", {2}, e.tg_len);
      g.emit(std::move(b.note(e.note).expect_error(e.cls)));
    }
    for (DType dt : {DType::float16, DType::bfloat16}) {
      auto b = g.start(dt, "mean");
      base(b);
      b.ints("targets", {2, 3}, {1, 2, 3, 1, 0, 0}).ints("input_lengths", {2}, {5, 5});
      b.ints("target_lengths", {2}, {3, 1});
      g.emit(std::move(b.note("16-bit log_probs (CTC on the CPU takes float32 and float64)")
                           .expect_error("type_error")));
    }
    {
      auto b = g.start(DType::float32, "mean");
      base(b);
      b.ints("targets", {2, 3}, {1, 2, 3, 1, 0, 0}).ints("input_lengths", {3}, {5, 5, 5});
      b.ints("target_lengths", {2}, {3, 1});
      g.emit(std::move(b.note("input_lengths of the wrong size").expect_error("shape_error")));
    }
    {
      auto b = g.start(DType::float64, "avg");
      base(b);
      b.ints("targets", {2, 3}, {1, 2, 3, 1, 0, 0}).ints("input_lengths", {2}, {5, 5});
      b.ints("target_lengths", {2}, {3, 1});
      g.emit(std::move(b.note("invalid reduction").expect_error("value_error")));
    }
  };
  drive(gen, f);
}

}  // namespace lossbench::golden
