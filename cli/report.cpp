#include "report.hpp"

#include <cstdio>
#include <string>

namespace lossbench::cli {

using ojson = nlohmann::ordered_json;

namespace {
std::string_view kind_name(InputKind k) {
  switch (k) {
    case InputKind::Floating: return "floating";
    case InputKind::Index: return "int64";
    case InputKind::FloatingOrIndex: return "floating or int64";
  }
  return "?";
}

ojson param_default_json(const ParamValue& v) {
  return std::visit(
      [](const auto& x) -> ojson {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::monostate>)
          return nullptr;
        else
          return x;
      },
      v);
}

ojson tensor_json(const ref::CertifiedTensor& t) {
  ojson j;
  j["dtype"] = to_string(t.dtype);
  j["shape"] = t.shape;
  auto exact = ojson::array(), rounded = ojson::array();
  for (std::size_t i = 0; i < t.values.size(); ++i) {
    exact.push_back(ref::decimal_string(t.values[i].value));
    rounded.push_back(hex_string(t.rounded_value(i)));
  }
  j["exact"] = std::move(exact);
  j["rounded"] = std::move(rounded);
  return j;
}

void print_tensor(std::ostream& out, const std::string& title, const ref::CertifiedTensor& t) {
  out << title << "  dtype " << to_string(t.dtype) << "  shape " << shape_string(t.shape) << "\n";
  char line[256];
  std::snprintf(line, sizeof line, "  %6s  %-52s  %-22s  %s\n", "index", "exact (45 digits)",
                "rounded (hex)", "rounded (decimal)");
  out << line;
  const std::size_t limit = 50;
  for (std::size_t i = 0; i < t.values.size() && i < limit; ++i) {
    const double r = t.rounded_value(i);
    std::snprintf(line, sizeof line, "  %6zu  %-52s  %-22s  %.17g\n", i,
                  ref::decimal_string(t.values[i].value).c_str(), hex_string(r).c_str(), r);
    out << line;
  }
  if (t.values.size() > limit)
    out << "  ... " << (t.values.size() - limit) << " more (use --json for all)\n";
}
}  // namespace

ojson catalog_json() {
  ojson all = ojson::array();
  for (const auto& l : catalog()) {
    ojson j;
    j["id"] = l.name;
    j["module"] = l.module;
    j["summary"] = l.summary;
    j["shape_family"] = l.shape_family;
    auto inputs = ojson::array();
    for (const auto& s : l.inputs)
      inputs.push_back({{"name", s.name},
                        {"kind", kind_name(s.kind)},
                        {"optional", s.optional},
                        {"differentiable", s.differentiable},
                        {"doc", s.doc}});
    j["inputs"] = std::move(inputs);
    auto params = ojson::array();
    for (const auto& p : l.params)
      params.push_back({{"name", p.name},
                        {"type", to_string(p.type)},
                        {"default", param_default_json(p.default_value)},
                        {"nullable", p.nullable},
                        {"doc", p.doc}});
    j["params"] = std::move(params);
    j["reductions"] = l.reductions;
    j["default_reduction"] = l.reductions.front();
    all.push_back(std::move(j));
  }
  return all;
}

void print_catalog(std::ostream& out) {
  for (const auto& l : catalog()) {
    std::string inputs, params, reds;
    for (const auto& s : l.inputs)
      inputs += (inputs.empty() ? "" : ", ") + std::string(s.name) + (s.optional ? "?" : "");
    for (const auto& p : l.params)
      params += (params.empty() ? "" : ", ") + std::string(p.name) + "=" +
                param_to_string(p.default_value);
    for (const auto& r : l.reductions) reds += (reds.empty() ? "" : "|") + std::string(r);
    char line[512];
    std::snprintf(line, sizeof line, "%-34s %-30s inputs(%s)", std::string(l.name).c_str(),
                  std::string(l.module).c_str(), inputs.c_str());
    out << line << "\n    params(" << params << ")  reduction=" << reds << "\n";
  }
  out << catalog().size() << " losses\n";
}

ojson certified_json(const Case& c, const ref::Certified& result) {
  ojson j;
  j["loss"] = c.loss->name;
  j["reduction"] = c.reduction;
  j["output"] = tensor_json(result.output);
  if (!result.grads.empty()) {
    ojson g = ojson::object();
    for (const auto& [name, t] : result.grads) g[name] = tensor_json(t);
    j["grad"] = std::move(g);
  }
  j["certificate"] = {{"precision_bits", result.precision_bits},
                      {"evaluations", result.evaluations}};
  return j;
}

void print_certified(std::ostream& out, const Case& c, const ref::Certified& result) {
  out << c.loss->name << "  reduction=" << c.reduction << "\n";
  print_tensor(out, "output", result.output);
  for (const auto& [name, t] : result.grads) print_tensor(out, "grad " + name, t);
  out << "certified at " << result.precision_bits << " bits after " << result.evaluations
      << " evaluations\n";
}

}  // namespace lossbench::cli
