#pragma once
// Pieces shared by the per-loss references: dtype rules, broadcasting, reductions, upstream
// gradients. PyTorch's error messages are paraphrased so that their gist matches.
#include <string>
#include <string_view>
#include <vector>

#include "lossbench/error.hpp"
#include "reference.hpp"

namespace lossbench::ref {

// The dtype of the loss: every floating input given must have it (PyTorch's kernels reject or
// promote mixed dtypes; lossbench rejects them). Throws Error(Type) naming both inputs.
DType loss_dtype(const Case& c);

// A floating parameter as the kernel uses it: rounded to `dtype` (float64 keeps the double,
// float32 rounds to float; see docs/semantics.md for 16-bit inputs per loss).
Real param_as(const Case& c, std::string_view name, DType dtype);

// The elements of a tensor as Reals (index tensors converted exactly).
std::vector<Real> reals(const Tensor& t);
// The elements of a floating input of the case as Reals, with the request's perturbation
// applied. Reference code reads its floating inputs through this.
std::vector<Real> input_values(const Request& request, std::string_view name);

// PyTorch broadcasting. Throws Error(Shape): "The size of tensor a (3) must match the size of
// tensor b (4) at non-singleton dimension 1".
Shape broadcast_shapes(const Shape& a, const Shape& b);
// Expands a tensor's values to `shape` (which it must broadcast to).
std::vector<Real> broadcast_to(const std::vector<Real>& values, const Shape& from, const Shape& to);
// The reverse: sums a gradient of shape `from` down to the broadcast source shape `to`.
std::vector<Real> sum_to(const std::vector<Real>& values, const Shape& from, const Shape& to);

// Applies a reduction to per-element losses of shape `shape`: "none" keeps them, "sum" is the
// correctly rounded sum, "mean" the sum over N (NaN when N = 0). "batchmean" divides the sum
// by shape[0] (by 1 for a 0-d tensor) as kl_div does.
RealTensor reduce(std::vector<Real> terms, const Shape& shape, std::string_view reduction,
                  DType dtype);

// The upstream gradient of the output: the case's grad_output when it has one (its shape must be
// the output's), else 1 for a reduced output and ones for reduction "none".
std::vector<Real> upstream(const Request& request, const Shape& output_shape);

// The upstream gradient seen by each per-element term of a reduction over `shape`:
// g_i for "none", g for "sum", g / N for "mean", g / shape[0] for "batchmean".
std::vector<Real> per_element_upstream(const Request& request, const Shape& shape,
                                       std::string_view reduction);

// Makes a gradient tensor of an input.
RealTensor grad_tensor(const Tensor& input, std::vector<Real> values);

}  // namespace lossbench::ref
