#pragma once
// The catalog: the 21 losses of torch.nn in PyTorch 2.2, their inputs, parameters and
// reductions. Every other part of lossbench (reference, corpus, scorer, backends, benchmarks,
// reports) is driven from this one table.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace lossbench {

enum class LossId {
#define LOSSBENCH_LOSS(id, module) id,
#include "lossbench/losses.def"
#undef LOSSBENCH_LOSS
};

inline constexpr std::size_t kLossCount = 0
#define LOSSBENCH_LOSS(id, module) +1
#include "lossbench/losses.def"
#undef LOSSBENCH_LOSS
    ;

// What element types an input accepts.
enum class InputKind {
  Floating,         // float64 / float32 / float16 / bfloat16, same dtype as the loss's input
  Index,            // int64 class indices or lengths
  FloatingOrIndex,  // cross_entropy's target (class indices or probabilities), +-1 labels
};

struct InputSpec {
  std::string_view name;  // PyTorch's functional argument name
  InputKind kind;
  bool optional;        // may be left out (weight, pos_weight), as None in PyTorch
  bool differentiable;  // PyTorch 2.2 computes a gradient for it (floating values only)
  std::string_view doc;
};

// A parameter value. std::monostate stands for Python's None.
using ParamValue = std::variant<std::monostate, bool, std::int64_t, double, std::string>;

enum class ParamType { Bool, Int, Float, String };

struct ParamSpec {
  std::string_view name;  // PyTorch's keyword
  ParamType type;
  ParamValue default_value;
  bool nullable;  // None is a valid value
  std::string_view doc;
};

struct LossInfo {
  LossId id;
  std::string_view name;    // torch.nn.functional name, e.g. "cross_entropy"
  std::string_view module;  // torch.nn module, e.g. "CrossEntropyLoss"
  std::vector<InputSpec> inputs;
  std::vector<ParamSpec> params;
  std::vector<std::string_view> reductions;  // the first entry is PyTorch's default
  std::string_view shape_family;             // "elementwise", "classification", ...
  std::string_view summary;

  const InputSpec* find_input(std::string_view input_name) const;
  const ParamSpec* find_param(std::string_view param_name) const;
  bool supports_reduction(std::string_view reduction) const;
};

// All losses, in catalog order.
const std::vector<LossInfo>& catalog();
const LossInfo& info(LossId id);
// nullptr when no loss has that name.
const LossInfo* find_loss(std::string_view name);

std::string_view to_string(ParamType type);
std::string param_to_string(const ParamValue& value);

}  // namespace lossbench
