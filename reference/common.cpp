#include "common.hpp"

#include <algorithm>

namespace lossbench::ref {

DType loss_dtype(const Case& c) {
  const Tensor* first = nullptr;
  std::string first_name;
  for (const auto& spec : c.loss->inputs) {
    const Tensor* t = c.optional_input(spec.name);
    if (!t || !is_floating(t->dtype)) continue;
    if (!first) {
      first = t;
      first_name = spec.name;
    } else if (t->dtype != first->dtype) {
      throw Error(ErrorKind::Type, "expected all floating inputs to have one dtype, but " +
                                       first_name + " is " + std::string(to_string(first->dtype)) +
                                       " and " + std::string(spec.name) + " is " +
                                       std::string(to_string(t->dtype)));
    }
  }
  if (!first) throw Error(ErrorKind::Type, "the case has no floating input");
  return first->dtype;
}

Real param_as(const Case& c, std::string_view name, DType dtype) {
  return Real(round_to(c.param_float(name), dtype));
}

std::vector<Real> reals(const Tensor& t) {
  std::vector<Real> out;
  out.reserve(static_cast<std::size_t>(t.numel()));
  if (t.dtype == DType::int64)
    for (auto v : t.ints) out.emplace_back(static_cast<long long>(v));
  else
    for (auto v : t.values) out.emplace_back(v);
  return out;
}

std::vector<Real> input_values(const Request& request, std::string_view name) {
  std::vector<Real> v = reals(request.c.input(name));
  if (request.perturb && request.perturb->input == name)
    v.at(request.perturb->index) += request.perturb->delta;
  return v;
}

Shape broadcast_shapes(const Shape& a, const Shape& b) {
  const std::size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const std::int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1)
      throw Error(ErrorKind::ShapeMismatch,
                  "The size of tensor a (" + std::to_string(da) +
                      ") must match the size of tensor b (" + std::to_string(db) +
                      ") at non-singleton dimension " + std::to_string(i));
    out[i] = da == 1 ? db : da;
  }
  return out;
}

namespace {
// For each element of `to`, the flat index of the element of `from` it comes from.
std::vector<std::size_t> source_index(const Shape& from, const Shape& to) {
  const std::size_t n = static_cast<std::size_t>(numel(to));
  std::vector<std::size_t> idx(n);
  const std::size_t nd = to.size();
  if (from.size() > nd)
    throw Error(ErrorKind::ShapeMismatch,
                "cannot broadcast " + shape_string(from) + " to " + shape_string(to));
  std::vector<std::int64_t> stride(nd, 0);
  std::int64_t s = 1;
  for (std::size_t k = 0; k < from.size(); ++k) {
    const std::size_t fk = from.size() - 1 - k, tk = nd - 1 - k;
    if (from[fk] != to[tk] && from[fk] != 1)
      throw Error(ErrorKind::ShapeMismatch,
                  "cannot broadcast " + shape_string(from) + " to " + shape_string(to));
    stride[tk] = from[fk] == 1 ? 0 : s;
    s *= from[fk];
  }
  std::vector<std::int64_t> pos(nd, 0);
  for (std::size_t i = 0; i < n; ++i) {
    std::int64_t off = 0;
    for (std::size_t k = 0; k < nd; ++k) off += pos[k] * stride[k];
    idx[i] = static_cast<std::size_t>(off);
    for (std::size_t k = nd; k-- > 0;) {
      if (++pos[k] < to[k]) break;
      pos[k] = 0;
    }
  }
  return idx;
}
}  // namespace

std::vector<Real> broadcast_to(const std::vector<Real>& values, const Shape& from,
                               const Shape& to) {
  if (from == to) return values;
  const auto idx = source_index(from, to);
  std::vector<Real> out;
  out.reserve(idx.size());
  for (auto i : idx) out.push_back(values[i]);
  return out;
}

std::vector<Real> sum_to(const std::vector<Real>& values, const Shape& from, const Shape& to) {
  if (from == to) return values;
  const auto idx = source_index(to, from);
  std::vector<std::vector<Real>> parts(static_cast<std::size_t>(numel(to)));
  for (std::size_t i = 0; i < idx.size(); ++i) parts[idx[i]].push_back(values[i]);
  std::vector<Real> out;
  out.reserve(parts.size());
  for (const auto& p : parts) out.push_back(sum(p));
  return out;
}

RealTensor reduce(std::vector<Real> terms, const Shape& shape, std::string_view reduction,
                  DType dtype) {
  if (reduction == "none") return {dtype, shape, std::move(terms)};
  Real total = sum(terms);
  if (reduction == "mean") {
    total = terms.empty() ? nan() : Real(total / Real(static_cast<long long>(terms.size())));
  } else if (reduction == "batchmean") {
    const std::int64_t b = shape.empty() ? 1 : shape[0];
    total = total / Real(static_cast<long long>(b));
  } else if (reduction != "sum") {
    throw Error(ErrorKind::Value, std::string(reduction) + " is not a valid value for reduction");
  }
  return {dtype, {}, {std::move(total)}};
}

std::vector<Real> upstream(const Request& request, const Shape& output_shape) {
  const std::size_t n = static_cast<std::size_t>(numel(output_shape));
  if (!request.c.grad_output) return std::vector<Real>(n, Real(1));
  const Tensor& g = *request.c.grad_output;
  if (g.shape != output_shape)
    throw Error(ErrorKind::ShapeMismatch, "grad_output has shape " + shape_string(g.shape) +
                                              " but the loss output has shape " +
                                              shape_string(output_shape));
  return reals(g);
}

std::vector<Real> per_element_upstream(const Request& request, const Shape& shape,
                                       std::string_view reduction) {
  const std::size_t n = static_cast<std::size_t>(numel(shape));
  if (reduction == "none") return upstream(request, shape);
  Real g = upstream(request, {}).front();
  if (reduction == "mean")
    g = g / Real(static_cast<long long>(n));
  else if (reduction == "batchmean")
    g = g / Real(static_cast<long long>(shape.empty() ? 1 : shape[0]));
  return std::vector<Real>(n, g);
}

RealTensor grad_tensor(const Tensor& input, std::vector<Real> values) {
  return {input.dtype, input.shape, std::move(values)};
}

}  // namespace lossbench::ref
