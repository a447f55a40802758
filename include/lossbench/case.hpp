#pragma once
// One loss evaluation: the case document (see docs/case-format.md) in memory.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lossbench/catalog.hpp"
#include "lossbench/dtype.hpp"

namespace lossbench {

using Shape = std::vector<std::int64_t>;
std::int64_t numel(const Shape& shape);
std::string shape_string(const Shape& shape);  // "[2, 3]"

// A host tensor, row-major. Floating data is held as double, which represents every value of
// every supported floating format exactly; index data as int64.
struct Tensor {
  DType dtype = DType::float32;
  Shape shape;
  std::vector<double> values;      // floating dtypes
  std::vector<std::int64_t> ints;  // int64
  std::int64_t numel() const { return lossbench::numel(shape); }
  std::int64_t dim() const { return static_cast<std::int64_t>(shape.size()); }
};

struct Case {
  const LossInfo* loss = nullptr;
  std::string reduction;
  std::map<std::string, ParamValue, std::less<>>
      params;                                         // every catalog parameter, defaults filled in
  std::map<std::string, Tensor, std::less<>> inputs;  // the inputs the document gives
  std::optional<Tensor> grad_output;                  // upstream gradient, if given

  bool has(std::string_view input) const { return inputs.find(input) != inputs.end(); }
  const Tensor& input(std::string_view name) const;  // throws if absent
  const Tensor* optional_input(std::string_view name) const;

  bool param_bool(std::string_view name) const;
  std::int64_t param_int(std::string_view name) const;
  double param_float(std::string_view name) const;
  std::string param_string(std::string_view name) const;
  bool param_is_none(std::string_view name) const;
};

// Parses and validates a case document against the catalog. Throws Error(Format) with the
// JSON location of the first problem.
Case parse_case(std::string_view json_text);
// Serializes a case back to its document form (hex floats, exact).
std::string case_to_json(const Case& c);

}  // namespace lossbench
