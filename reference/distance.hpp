#pragma once
// Distances for triplet_margin_with_distance_loss: the public API for users' own C++ distance
// functions, and the triplet machinery that triplet_margin_loss shares.
//
// PyTorch's TripletMarginWithDistanceLoss takes any Python callable D(x, y). lossbench's case
// documents name the distance with a string (the `distance_function` parameter):
//   - None or "pairwise_distance": torch.pairwise_distance(x, y) (p = 2, eps = 1e-6);
//   - "cosine": 1 - torch.nn.functional.cosine_similarity(x, y) (dim = 1, eps = 1e-8), the
//     example of PyTorch's documentation;
//   - any name registered here with register_distance, e.g. the built-in "squared_euclidean".
//
// A registered distance is applied row by row: the two inputs are broadcast together, and the
// distance gets one row (the last dimension) of each at a time; a 0-d pair is one row of length
// 1. It returns one value per row, so the distance's output has the broadcast shape without its
// last dimension, as pairwise_distance's does.
//
// Rules for the functions (they run inside the certification loop, see reference.hpp):
//   - compute with Real at the current working precision, never set a precision and never keep
//     a Real in a static;
//   - be a fixed sequence of correctly rounded operations (mp.hpp), so that two evaluations at
//     precisions p and 2p differ by the rounding error only;
//   - propagate NaN as PyTorch would.
// Ties (swap's min(d(a, n), d(p, n)) and the hinge at exactly 0) of a registered distance are
// decided on the computed values: a tie reached through irrational intermediates (a sqrt) may
// not be certifiable. Rational distances (squared_euclidean) are exact at enough precision.
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "reference.hpp"

namespace lossbench::ref {

// D(x, y) for one row; x.size() == y.size() (possibly 0).
using DistanceValue = std::function<Real(const std::vector<Real>& x, const std::vector<Real>& y)>;
// The partial derivatives of D at (x, y): dx[j] = dD/dx[j], dy[j] = dD/dy[j]. dx and dy come
// sized like x and y, filled with zeros.
using DistanceGradient = std::function<void(const std::vector<Real>& x, const std::vector<Real>& y,
                                            std::vector<Real>& dx, std::vector<Real>& dy)>;

struct DistanceFn {
  DistanceValue value;        // required
  DistanceGradient gradient;  // optional: without it, cases using this distance have no
                              // gradient (asking for one is rejected with Error(Value))
};

// Registers (or replaces) a distance under `name`. Throws Error(Value) for an empty name, for
// the reserved names "pairwise_distance" and "cosine", or for a DistanceFn without `value`.
// Thread-safe.
void register_distance(std::string name, DistanceFn fn);
// Removes a registered distance; false when there was none. The built-in ones can be removed.
bool unregister_distance(std::string_view name);
// A copy of the registered distance, if any.
std::optional<DistanceFn> find_distance(std::string_view name);
// The registered names, sorted (built-in: "squared_euclidean" = sum_j (x_j - y_j)^2).
std::vector<std::string> registered_distances();

namespace detail {

// One of the distances a triplet loss uses (internal to the two triplet references).
struct DistanceSpec {
  enum class Kind { Pairwise, Cosine, Custom };
  Kind kind = Kind::Pairwise;
  Real p;            // Pairwise: norm degree (already rounded as the kernel uses it)
  Real eps;          // Pairwise: added to the difference; Cosine: floor of each norm
  std::string name;  // Custom: registered name (for messages)
  DistanceFn custom;
};

// max(0, margin + D(a, p) - D(a, n)) (with swap: D(a, n) -> min(D(a, n), D(p, n))), reduced,
// with its gradients when r.grad. Validates the shapes first.
Evaluation triplet_loss(const Request& r, const DistanceSpec& spec, const Real& margin, bool swap);

}  // namespace detail

}  // namespace lossbench::ref
