// The catalog of the 21 losses of torch.nn in PyTorch 2.2. Names, defaults and differentiable
// inputs follow torch.nn.functional and tools/autograd/derivatives.yaml of PyTorch 2.2; see
// docs/semantics.md for the sources and for what was checked against a real torch 2.2.
#include "lossbench/catalog.hpp"

#include <algorithm>
#include <array>
#include <cstdio>

#include "lossbench/dtype.hpp"

namespace lossbench {
namespace {

using K = InputKind;
using P = ParamType;

constexpr InputSpec in(std::string_view name, bool differentiable = true,
                       std::string_view doc = "") {
  return {name, K::Floating, false, differentiable, doc};
}
constexpr InputSpec index(std::string_view name, std::string_view doc = "") {
  return {name, K::Index, false, false, doc};
}
constexpr InputSpec optional_weight(std::string_view name, bool differentiable,
                                    std::string_view doc) {
  return {name, K::Floating, true, differentiable, doc};
}
constexpr InputSpec sign_labels(std::string_view name, bool differentiable) {
  return {name, K::FloatingOrIndex, false, differentiable, "labels, 1 or -1"};
}

ParamSpec fparam(std::string_view name, double def, std::string_view doc) {
  return {name, P::Float, def, false, doc};
}
ParamSpec bparam(std::string_view name, bool def, std::string_view doc) {
  return {name, P::Bool, def, false, doc};
}
ParamSpec iparam(std::string_view name, std::int64_t def, std::string_view doc) {
  return {name, P::Int, def, false, doc};
}

const std::vector<std::string_view> kStandard = {"mean", "none", "sum"};

LossInfo make(LossId id) {
  switch (id) {
    case LossId::l1_loss:
      return {id, "l1_loss", "L1Loss",      {in("input"), in("target")},
              {}, kStandard, "elementwise", "|x - y|"};
    case LossId::mse_loss:
      return {id, "mse_loss", "MSELoss",     {in("input"), in("target")},
              {}, kStandard,  "elementwise", "(x - y)^2"};
    case LossId::cross_entropy:
      return {id,
              "cross_entropy",
              "CrossEntropyLoss",
              {in("input"),
               {"target", K::FloatingOrIndex, false, true,
                "class indices (int64) or class probabilities (same shape as input); "
                "differentiable in probability mode"},
               optional_weight("weight", true,
                               "per-class weight (C); differentiable in probability mode")},
              {iparam("ignore_index", -100, "target value that contributes nothing"),
               fparam("label_smoothing", 0.0, "epsilon in [0, 1]")},
              kStandard,
              "classification",
              "-sum_c w_c t_c log_softmax(x)_c"};
    case LossId::ctc_loss:
      return {id,
              "ctc_loss",
              "CTCLoss",
              {in("log_probs", true, "(T, N, C) or (T, C) log-probabilities"),
               index("targets", "padded (N, S) or concatenated (sum(target_lengths))"),
               index("input_lengths", "(N) or ()"), index("target_lengths", "(N) or ()")},
              {iparam("blank", 0, "blank label"),
               bparam("zero_infinity", false, "infinite losses and their gradients become 0")},
              kStandard,
              "sequence",
              "-log sum over alignments of prod p"};
    case LossId::nll_loss:
      return {
          id,
          "nll_loss",
          "NLLLoss",
          {in("input"), index("target"), optional_weight("weight", false, "per-class weight (C)")},
          {iparam("ignore_index", -100, "target value that contributes nothing")},
          kStandard,
          "classification",
          "-w_y x_y"};
    case LossId::poisson_nll_loss:
      return {id,
              "poisson_nll_loss",
              "PoissonNLLLoss",
              {in("input"), in("target")},
              {bparam("log_input", true, "input is log(rate)"),
               bparam("full", false, "add the Stirling term"),
               fparam("eps", 1e-8, "added to the rate before log when log_input is false")},
              kStandard,
              "elementwise",
              "exp(x) - y x"};
    case LossId::gaussian_nll_loss:
      return {id,
              "gaussian_nll_loss",
              "GaussianNLLLoss",
              {in("input"), in("target"), in("var", true, "variance, broadcastable to input")},
              {bparam("full", false, "add 0.5 log(2 pi)"), fparam("eps", 1e-6, "variance clamp")},
              kStandard,
              "elementwise",
              "0.5 (log max(var, eps) + (x - y)^2 / max(var, eps))"};
    case LossId::kl_div:
      return {id,
              "kl_div",
              "KLDivLoss",
              {in("input", true, "log-probabilities"), in("target")},
              {bparam("log_target", false, "target is given as log-probabilities")},
              {"mean", "batchmean", "none", "sum"},
              "elementwise",
              "y (log y - x)"};
    case LossId::binary_cross_entropy:
      return {id,
              "binary_cross_entropy",
              "BCELoss",
              {in("input", true, "probabilities in [0, 1]"), in("target"),
               optional_weight("weight", false, "broadcastable to input")},
              {},
              kStandard,
              "elementwise",
              "-w (y log x + (1 - y) log(1 - x)), logs clamped at -100"};
    case LossId::binary_cross_entropy_with_logits:
      return {id,
              "binary_cross_entropy_with_logits",
              "BCEWithLogitsLoss",
              {in("input", true, "logits"), in("target"),
               optional_weight("weight", false, "broadcastable to input"),
               optional_weight("pos_weight", false, "broadcast along the last (class) dim")},
              {},
              kStandard,
              "elementwise",
              "-w (p y log sigmoid(x) + (1 - y) log(1 - sigmoid(x)))"};
    case LossId::margin_ranking_loss:
      return {id,
              "margin_ranking_loss",
              "MarginRankingLoss",
              {in("input1"), in("input2"), sign_labels("target", true)},
              {fparam("margin", 0.0, "")},
              kStandard,
              "elementwise",
              "max(0, -y (x1 - x2) + margin)"};
    case LossId::hinge_embedding_loss:
      return {id,
              "hinge_embedding_loss",
              "HingeEmbeddingLoss",
              {in("input"), sign_labels("target", false)},
              {fparam("margin", 1.0, "")},
              kStandard,
              "elementwise",
              "x if y = 1, max(0, margin - x) if y = -1"};
    case LossId::multilabel_margin_loss:
      return {id,
              "multilabel_margin_loss",
              "MultiLabelMarginLoss",
              {in("input"), index("target", "target classes, ended by the first -1")},
              {},
              kStandard,
              "classification",
              "sum_j sum_{i not target} max(0, 1 - (x_yj - x_i)) / C"};
    case LossId::huber_loss:
      return {id,
              "huber_loss",
              "HuberLoss",
              {in("input"), in("target")},
              {fparam("delta", 1.0, "> 0")},
              kStandard,
              "elementwise",
              "0.5 d^2 if |d| < delta else delta (|d| - 0.5 delta)"};
    case LossId::smooth_l1_loss:
      return {id,
              "smooth_l1_loss",
              "SmoothL1Loss",
              {in("input"), in("target")},
              {fparam("beta", 1.0, ">= 0; 0 gives l1_loss")},
              kStandard,
              "elementwise",
              "0.5 d^2 / beta if |d| < beta else |d| - 0.5 beta"};
    case LossId::soft_margin_loss:
      return {id, "soft_margin_loss", "SoftMarginLoss", {in("input"), in("target", false)},
              {}, kStandard,          "elementwise",    "log(1 + exp(-y x))"};
    case LossId::multilabel_soft_margin_loss:
      return {id,
              "multilabel_soft_margin_loss",
              "MultiLabelSoftMarginLoss",
              {in("input"), in("target"), optional_weight("weight", true, "per-class weight (C)")},
              {},
              kStandard,
              "classification",
              "-mean_c w_c (y log sigmoid(x) + (1 - y) log sigmoid(-x))"};
    case LossId::cosine_embedding_loss:
      return {id,
              "cosine_embedding_loss",
              "CosineEmbeddingLoss",
              {in("input1"), in("input2"), sign_labels("target", false)},
              {fparam("margin", 0.0, "in [-1, 1]")},
              kStandard,
              "pairwise",
              "1 - cos if y = 1, max(0, cos - margin) if y = -1"};
    case LossId::multi_margin_loss:
      return {
          id,
          "multi_margin_loss",
          "MultiMarginLoss",
          {in("input"), index("target"), optional_weight("weight", false, "per-class weight (C)")},
          {iparam("p", 1, "1 or 2"), fparam("margin", 1.0, "")},
          kStandard,
          "classification",
          "sum_{i != y} max(0, w_y (margin - x_y + x_i))^p / C"};
    case LossId::triplet_margin_loss:
      return {id,
              "triplet_margin_loss",
              "TripletMarginLoss",
              {in("anchor"), in("positive"), in("negative")},
              {fparam("margin", 1.0, ""), fparam("p", 2.0, "norm degree"),
               fparam("eps", 1e-6, "added to the difference before the norm"),
               bparam("swap", false, "use min(d(a, n), d(p, n))")},
              kStandard,
              "triplet",
              "max(0, d(a, p) - d(a, n) + margin)"};
    case LossId::triplet_margin_with_distance_loss:
      return {id,
              "triplet_margin_with_distance_loss",
              "TripletMarginWithDistanceLoss",
              {in("anchor"), in("positive"), in("negative")},
              {{"distance_function", P::String, std::monostate{}, true,
                "None (pairwise_distance), \"pairwise_distance\", \"cosine\" "
                "(1 - cosine_similarity) or the name of a registered C++ distance"},
               fparam("margin", 1.0, ""),
               bparam("swap", false, "use min(d(a, n), d(p, n))")},
              kStandard,
              "triplet",
              "max(0, D(a, p) - D(a, n) + margin)"};
  }
  return {};
}

std::vector<LossInfo> build() {
  std::vector<LossInfo> all;
#define LOSSBENCH_LOSS(id, module) all.push_back(make(LossId::id));
#include "lossbench/losses.def"
#undef LOSSBENCH_LOSS
  return all;
}

}  // namespace

const InputSpec* LossInfo::find_input(std::string_view input_name) const {
  auto it = std::find_if(inputs.begin(), inputs.end(),
                         [&](const InputSpec& s) { return s.name == input_name; });
  return it == inputs.end() ? nullptr : &*it;
}

const ParamSpec* LossInfo::find_param(std::string_view param_name) const {
  auto it = std::find_if(params.begin(), params.end(),
                         [&](const ParamSpec& s) { return s.name == param_name; });
  return it == params.end() ? nullptr : &*it;
}

bool LossInfo::supports_reduction(std::string_view reduction) const {
  return std::find(reductions.begin(), reductions.end(), reduction) != reductions.end();
}

const std::vector<LossInfo>& catalog() {
  static const std::vector<LossInfo> all = build();
  return all;
}

const LossInfo& info(LossId id) { return catalog()[static_cast<std::size_t>(id)]; }

const LossInfo* find_loss(std::string_view name) {
  for (const auto& l : catalog())
    if (l.name == name) return &l;
  return nullptr;
}

std::string_view to_string(ParamType type) {
  switch (type) {
    case ParamType::Bool: return "bool";
    case ParamType::Int: return "int";
    case ParamType::Float: return "float";
    case ParamType::String: return "string";
  }
  return "?";
}

std::string param_to_string(const ParamValue& value) {
  struct V {
    std::string operator()(std::monostate) const { return "None"; }
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(std::int64_t i) const { return std::to_string(i); }
    std::string operator()(double d) const {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.17g", d);
      return buf;
    }
    std::string operator()(const std::string& s) const { return s; }
  };
  return std::visit(V{}, value);
}

}  // namespace lossbench
