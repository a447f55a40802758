#pragma once
// The driver shared by the per-loss generators: a loss describes its option sets, shapes and
// how to fill its inputs for a kind of values; the driver walks dtypes x reductions x options
// x shapes for each group.
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "../gen.hpp"

namespace lossbench::golden {

// A set of parameters and optional inputs to exercise together.
struct Option {
  std::vector<std::pair<std::string, ojson>> params;
  std::vector<std::string> flags;  // optional inputs to give ("weight"), or variants ("probs")
  bool has(std::string_view f) const {
    for (const auto& x : flags)
      if (x == f) return true;
    return false;
  }
};

// What kind of values a case holds.
enum class Kind {
  typical,    // moderate values
  wide,       // a wide dynamic range
  ties,       // repeated values and exact ties (kinks of max, abs, ...)
  threshold,  // exactly on and next to the loss's thresholds (delta, beta, margins, clamps)
  special,    // NaN, infinities, signed zeros mixed in
  subnormal,  // subnormal and tiny values
  extreme,    // extreme logits or log-probabilities, tiny probabilities
  cancel,     // a reduced output much smaller than its terms
  large,      // many elements
};
std::string_view to_string(Kind k);

using Make = std::function<void(Gen&, CaseBuilder&, const Option&, const Shape&, Kind)>;

struct Family {
  std::vector<Option> options{Option{}};  // the first one: PyTorch's defaults
  Shape smoke_shape{2, 3};
  std::vector<Shape> shapes;        // reference group: unbatched, tiny, K-dimensional, larger
  std::vector<Shape> empty_shapes;  // empty tensors (special group)
  std::vector<Kind> special_kinds;
  std::vector<Kind> hard_kinds;  // besides `large`
  Shape hard_shape{16, 16};      // for hard_kinds
  // Committed tier: ~1e3 elements (float32 mean and float64 sum), or ~1e4 for a few losses
  // (float32 mean only: the corpus stays small).
  std::vector<Shape> large_shapes{{24, 24}};
  std::vector<Shape> huge_shapes;  // large tier: ~1e5 elements
  Make make;
  // The dtypes the loss accepts (empty: the group's, see Gen::dtypes).
  std::vector<DType> dtypes;
  // The output shape of reduction "none" for an input shape, when grad_output may be given.
  std::function<std::optional<Shape>(const Option&, const Shape&)> none_shape =
      [](const Option&, const Shape& s) { return std::optional<Shape>(s); };
  // Error cases (the error group).
  std::function<void(Gen&)> errors;
};

void drive(Gen& g, const Family& f);

// Applies an option's parameters to a case.
void apply(CaseBuilder& b, const Option& o);

// Values of a kind that need no loss-specific knowledge (typical, wide, ties, special,
// subnormal); other kinds fall back to typical.
Values generic(Gen& g, DType dt, Kind k, std::size_t n, double scale = 1.0);

}  // namespace lossbench::golden
