// Reading and writing case documents (docs/case-format.md).
#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>

#include "lossbench/case.hpp"
#include "lossbench/error.hpp"

namespace lossbench {

using json = nlohmann::json;

std::int64_t numel(const Shape& shape) {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

std::string shape_string(const Shape& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

const Tensor& Case::input(std::string_view name) const {
  auto it = inputs.find(name);
  if (it == inputs.end())
    throw Error(ErrorKind::Format, "missing input '" + std::string(name) + "'");
  return it->second;
}

const Tensor* Case::optional_input(std::string_view name) const {
  auto it = inputs.find(name);
  return it == inputs.end() ? nullptr : &it->second;
}

namespace {

const ParamValue& param(const Case& c, std::string_view name) {
  auto it = c.params.find(name);
  if (it == c.params.end())
    throw Error(ErrorKind::Format, "loss has no parameter '" + std::string(name) + "'");
  return it->second;
}

template <class T>
const T& param_as(const Case& c, std::string_view name) {
  const auto& v = param(c, name);
  if (const T* p = std::get_if<T>(&v)) return *p;
  throw Error(ErrorKind::Format, "parameter '" + std::string(name) + "' has the wrong type");
}

// Parses JSON with floating-point numbers kept as their source text, so that a decimal in a
// case is rounded once, straight to the dtype it belongs to.
class ExactNumberParser : public nlohmann::detail::json_sax_dom_parser<json> {
 public:
  using Base = nlohmann::detail::json_sax_dom_parser<json>;
  using Base::Base;
  bool number_float(double /*value*/, const std::string& text) {
    std::string copy = text;
    return Base::string(copy);
  }
};

struct Ctx {
  std::string where;
  [[noreturn]] void fail(const std::string& msg) const {
    throw Error(ErrorKind::Format, where + ": " + msg);
  }
  Ctx operator/(const std::string& key) const { return {where.empty() ? key : where + "." + key}; }
  Ctx operator[](std::size_t i) const { return {where + "[" + std::to_string(i) + "]"}; }
};

std::int64_t get_int(const json& j, const Ctx& at) {
  if (j.is_number_integer()) {
    if (j.is_number_unsigned() &&
        j.get<std::uint64_t>() >
            static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      at.fail("integer out of the int64 range");
    return j.get<std::int64_t>();
  }
  at.fail("expected an integer, got " + j.dump());
}

double get_float(const json& j, DType dtype, const Ctx& at) {
  if (j.is_number_integer()) return parse_float_text(std::to_string(j.get<std::int64_t>()), dtype);
  if (j.is_string()) {
    try {
      return parse_float_text(j.get<std::string>(), dtype);
    } catch (const Error& e) {
      at.fail(e.what());
    }
  }
  at.fail("expected a number (hex float string, decimal, \"nan\", \"inf\", \"-inf\"), got " +
          j.dump());
}

Tensor parse_tensor(const json& j, const Ctx& at, InputKind kind) {
  if (!j.is_object()) at.fail("expected a tensor object {\"dtype\", \"shape\", \"data\"}");
  for (const auto& [k, v] : j.items())
    if (k != "dtype" && k != "shape" && k != "data") (at / k).fail("unknown tensor field");
  for (const char* k : {"dtype", "shape", "data"})
    if (!j.contains(k)) at.fail(std::string("missing \"") + k + "\"");
  Tensor t;
  const auto& jd = j["dtype"];
  if (!jd.is_string()) (at / "dtype").fail("expected a string");
  auto dt = parse_dtype(jd.get<std::string>());
  if (!dt)
    (at / "dtype")
        .fail("unknown dtype '" + jd.get<std::string>() +
              "' (expected float64, float32, float16, bfloat16 or int64)");
  t.dtype = *dt;
  if (kind == InputKind::Floating && !is_floating(t.dtype))
    (at / "dtype").fail("this input must be floating (float64, float32, float16, bfloat16)");
  if (kind == InputKind::Index && t.dtype != DType::int64)
    (at / "dtype").fail("this input must be int64 (class indices or lengths)");
  const auto& js = j["shape"];
  if (!js.is_array()) (at / "shape").fail("expected an array of sizes");
  for (std::size_t i = 0; i < js.size(); ++i) {
    const auto d = get_int(js[i], (at / "shape")[i]);
    if (d < 0) (at / "shape")[i].fail("negative size " + std::to_string(d));
    t.shape.push_back(d);
  }
  const auto& data = j["data"];
  if (!data.is_array()) (at / "data").fail("expected an array");
  const auto n = static_cast<std::size_t>(t.numel());
  if (data.size() != n)
    (at / "data")
        .fail("has " + std::to_string(data.size()) + " elements but shape " +
              shape_string(t.shape) + " needs " + std::to_string(n));
  if (t.dtype == DType::int64) {
    t.ints.reserve(n);
    for (std::size_t i = 0; i < n; ++i) t.ints.push_back(get_int(data[i], (at / "data")[i]));
  } else {
    t.values.reserve(n);
    for (std::size_t i = 0; i < n; ++i)
      t.values.push_back(get_float(data[i], t.dtype, (at / "data")[i]));
  }
  return t;
}

ParamValue parse_param(const json& j, const ParamSpec& spec, const Ctx& at) {
  if (j.is_null()) {
    if (!spec.nullable) at.fail("None is not allowed for this parameter");
    return std::monostate{};
  }
  switch (spec.type) {
    case ParamType::Bool:
      if (!j.is_boolean()) at.fail("expected true or false, got " + j.dump());
      return j.get<bool>();
    case ParamType::Int: return get_int(j, at);
    case ParamType::Float: return get_float(j, DType::float64, at);
    case ParamType::String:
      if (!j.is_string()) at.fail("expected a string, got " + j.dump());
      return j.get<std::string>();
  }
  at.fail("unsupported parameter type");
}

}  // namespace

bool Case::param_bool(std::string_view name) const { return param_as<bool>(*this, name); }
std::int64_t Case::param_int(std::string_view name) const {
  return param_as<std::int64_t>(*this, name);
}
double Case::param_float(std::string_view name) const { return param_as<double>(*this, name); }
std::string Case::param_string(std::string_view name) const {
  return param_as<std::string>(*this, name);
}
bool Case::param_is_none(std::string_view name) const {
  return std::holds_alternative<std::monostate>(param(*this, name));
}

Case parse_case(std::string_view text) {
  json doc;
  ExactNumberParser sax(doc, true);
  try {
    json::sax_parse(text, &sax);
  } catch (const json::exception& e) {
    throw Error(ErrorKind::Format, std::string("malformed JSON: ") + e.what());
  }
  const Ctx root{""};
  if (!doc.is_object()) throw Error(ErrorKind::Format, "a case must be a JSON object");
  for (const auto& [k, v] : doc.items()) {
    static const char* known[] = {"loss",        "reduction", "params", "inputs",
                                  "grad_output", "id",        "note",   "meta"};
    if (std::none_of(std::begin(known), std::end(known), [&](const char* s) { return k == s; }))
      (root / k).fail("unknown key (expected loss, reduction, params, inputs, grad_output)");
  }
  if (!doc.contains("loss") || !doc["loss"].is_string())
    throw Error(ErrorKind::Format, "loss: missing or not a string");
  Case c;
  const std::string loss_name = doc["loss"].get<std::string>();
  c.loss = find_loss(loss_name);
  if (!c.loss)
    (root / "loss").fail("unknown loss '" + loss_name + "' (`lossbench list` shows the catalog)");
  const LossInfo& info = *c.loss;

  c.reduction = std::string(info.reductions.front());
  if (doc.contains("reduction")) {
    if (!doc["reduction"].is_string()) (root / "reduction").fail("expected a string");
    c.reduction = doc["reduction"].get<std::string>();
    if (!info.supports_reduction(c.reduction))
      throw Error(ErrorKind::Value, c.reduction + " is not a valid value for reduction");
  }

  for (const auto& p : info.params) c.params[std::string(p.name)] = p.default_value;
  if (doc.contains("params")) {
    const auto& jp = doc["params"];
    if (!jp.is_object()) (root / "params").fail("expected an object");
    for (const auto& [k, v] : jp.items()) {
      const ParamSpec* spec = info.find_param(k);
      if (!spec) {
        std::string known;
        for (const auto& p : info.params)
          known += (known.empty() ? "" : ", ") + std::string(p.name);
        (root / "params" / k)
            .fail("unknown parameter for " + loss_name +
                  (known.empty() ? " (it has none)" : " (known: " + known + ")"));
      }
      c.params[k] = parse_param(v, *spec, root / "params" / k);
    }
  }

  if (!doc.contains("inputs") || !doc["inputs"].is_object())
    (root / "inputs").fail("missing or not an object");
  for (const auto& [k, v] : doc["inputs"].items()) {
    const InputSpec* spec = info.find_input(k);
    if (!spec) {
      std::string known;
      for (const auto& s : info.inputs) known += (known.empty() ? "" : ", ") + std::string(s.name);
      (root / "inputs" / k).fail("unknown input for " + loss_name + " (known: " + known + ")");
    }
    c.inputs[k] = parse_tensor(v, root / "inputs" / k, spec->kind);
  }
  for (const auto& s : info.inputs)
    if (!s.optional && !c.has(s.name))
      (root / "inputs").fail("missing input '" + std::string(s.name) + "'");

  if (doc.contains("grad_output"))
    c.grad_output = parse_tensor(doc["grad_output"], root / "grad_output", InputKind::Floating);
  return c;
}

namespace {
nlohmann::ordered_json tensor_json(const Tensor& t) {
  nlohmann::ordered_json j;
  j["dtype"] = to_string(t.dtype);
  j["shape"] = t.shape;
  auto data = nlohmann::ordered_json::array();
  if (t.dtype == DType::int64)
    for (auto v : t.ints) data.push_back(v);
  else
    for (auto v : t.values) data.push_back(hex_string(v));
  j["data"] = std::move(data);
  return j;
}
}  // namespace

std::string case_to_json(const Case& c) {
  nlohmann::ordered_json j;
  j["loss"] = c.loss->name;
  j["reduction"] = c.reduction;
  auto params = nlohmann::ordered_json::object();
  for (const auto& [k, v] : c.params) {
    std::visit(
        [&](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, std::monostate>)
            params[k] = nullptr;
          else if constexpr (std::is_same_v<T, double>)
            params[k] = hex_string(x);
          else
            params[k] = x;
        },
        v);
  }
  j["params"] = std::move(params);
  auto inputs = nlohmann::ordered_json::object();
  for (const auto& s : c.loss->inputs)
    if (const Tensor* t = c.optional_input(s.name)) inputs[std::string(s.name)] = tensor_json(*t);
  j["inputs"] = std::move(inputs);
  if (c.grad_output) j["grad_output"] = tensor_json(*c.grad_output);
  return j.dump();
}

}  // namespace lossbench
