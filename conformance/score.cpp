// ULP scoring, budgets and expected failures.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>

#include "conformance.hpp"
#include "lossbench/error.hpp"

namespace lossbench::conformance {

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
}  // namespace

double parse_hex(const ojson& v) {
  if (v.is_number()) return v.get<double>();
  if (!v.is_string()) return kNaN;
  const std::string s = v.get<std::string>();
  if (s == "nan" || s == "-nan") return kNaN;
  if (s == "inf") return kInf;
  if (s == "-inf") return -kInf;
  return std::strtod(s.c_str(), nullptr);
}

double ulp_error(double got, double hi, double lo, double rounded, DType dtype) {
  if (std::isnan(hi) || std::isnan(rounded) || std::isnan(got))
    return (std::isnan(hi) || std::isnan(rounded)) && std::isnan(got) ? 0 : kInf;
  if (std::isinf(got)) return got == rounded ? 0 : kInf;
  if (std::isinf(hi)) return kInf;  // finite got, exact value beyond float64
  const FloatFormat f = format_of(dtype);
  // The binade of the exact value hi + lo: below hi's when hi is a power of two and lo
  // points towards zero.
  int e = hi == 0 ? f.emin : std::ilogb(hi);
  if (hi != 0 && std::fabs(hi) == std::ldexp(1.0, e) && lo != 0 &&
      std::signbit(lo) != std::signbit(hi))
    --e;
  e = std::clamp(e, f.emin, f.emax);
  const double ulp = std::ldexp(1.0, e - f.precision + 1);
  return std::fabs((got - hi) - lo) / ulp;
}

namespace {

std::string shape_text(const ojson& s) {
  std::string t = "[";
  for (std::size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + s[i].dump();
  return t + "]";
}

std::string decimal(double hi, double lo) {
  char b[96];
  if (lo == 0 || !std::isfinite(hi))
    std::snprintf(b, sizeof b, "%.17g", hi);
  else
    std::snprintf(b, sizeof b, "%.17g %s %.3g", hi, lo < 0 ? "-" : "+", std::fabs(lo));
  return b;
}

}  // namespace

TensorScore score_tensor(const ojson& got, const ojson& expected, const ojson& doc) {
  TensorScore s;
  s.present = true;
  if (!got.is_object() || !got.contains("data")) {
    s.problem = "missing";
    s.max_ulp = s.rms_ulp = kInf;
    return s;
  }
  if (got.contains("shape") && got["shape"] != expected["shape"]) {
    s.problem =
        "shape " + shape_text(got["shape"]) + " but expected " + shape_text(expected["shape"]);
    s.max_ulp = s.rms_ulp = kInf;
    return s;
  }
  const auto& data = got["data"];
  const auto& hi = expected["hi"];
  const auto& lo = expected["lo"];
  const auto& rounded = expected["rounded"];
  if (data.size() != hi.size()) {
    s.problem = std::to_string(data.size()) + " elements but expected " + std::to_string(hi.size());
    s.max_ulp = s.rms_ulp = kInf;
    return s;
  }
  const DType dt = parse_dtype(expected.value("dtype", "float64")).value_or(DType::float64);
  double sum_sq = 0;
  s.elements = static_cast<std::int64_t>(data.size());
  for (std::size_t i = 0; i < data.size(); ++i) {
    const double g = parse_hex(data[i]);
    const double h = parse_hex(hi[i]), l = parse_hex(lo[i]), r = parse_hex(rounded[i]);
    const double err = ulp_error(g, h, l, r, dt);
    if (g == 0 && r == 0 && std::signbit(g) != std::signbit(r)) ++s.signed_zero_mismatches;
    sum_sq += err * err;
    if (s.worst < 0 || err > s.max_ulp || (std::isnan(err) && !std::isnan(s.max_ulp))) {
      s.max_ulp = err;
      s.worst = static_cast<std::int64_t>(i);
    }
  }
  s.rms_ulp = data.empty() ? 0 : std::sqrt(sum_sq / static_cast<double>(data.size()));
  if (s.worst >= 0) {
    const auto i = static_cast<std::size_t>(s.worst);
    ojson w;
    w["index"] = s.worst;
    // Multi-index of the worst element.
    auto idx = ojson::array();
    {
      std::int64_t rest = s.worst;
      const auto& shape = expected["shape"];
      std::vector<std::int64_t> mi(shape.size());
      for (std::size_t d = shape.size(); d-- > 0;) {
        const auto n = shape[d].get<std::int64_t>();
        mi[d] = n ? rest % n : 0;
        rest = n ? rest / n : 0;
      }
      for (auto v : mi) idx.push_back(v);
    }
    w["at"] = std::move(idx);
    w["got"] = data[i];
    w["expected"] = rounded[i];
    w["exact"] = decimal(parse_hex(hi[i]), parse_hex(lo[i]));
    w["ulp"] = s.max_ulp;
    // Inputs with the same shape as this tensor, at the same element.
    ojson inputs = ojson::object();
    if (doc.contains("inputs"))
      for (const auto& [name, t] : doc["inputs"].items())
        if (t.contains("shape") && t["shape"] == expected["shape"] && t.contains("data") &&
            i < t["data"].size())
          inputs[name] = t["data"][i];
    if (!inputs.empty()) w["inputs"] = std::move(inputs);
    s.worst_detail = std::move(w);
  }
  return s;
}

// ---------------------------------------------------------------- globs, budgets, xfails

bool glob_match(std::string_view p, std::string_view t) {
  std::size_t pi = 0, ti = 0, star = std::string_view::npos, mark = 0;
  while (ti < t.size()) {
    if (pi < p.size() && (p[pi] == '?' || p[pi] == t[ti])) {
      ++pi;
      ++ti;
    } else if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = ti;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      ti = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

namespace {

std::vector<std::string> split_ws(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  std::string w;
  while (in >> w) out.push_back(w);
  return out;
}

std::string strip_comment(const std::string& line) {
  const auto h = line.find('#');
  return h == std::string::npos ? line : line.substr(0, h);
}

// "0.5", "torch", "2*torch", "1,torch" (the largest of the allowances).
Budget parse_budget(const std::string& text, const std::string& rule) {
  Budget b;
  b.ulp = -1;
  b.rule = rule;
  std::stringstream ss(text);
  std::string tok;
  bool any = false;
  while (std::getline(ss, tok, ',')) {
    if (tok.empty()) continue;
    any = true;
    const auto star = tok.find('*');
    const std::string base = star == std::string::npos ? tok : tok.substr(star + 1);
    if (base == "torch") {
      b.torch = true;
      if (star != std::string::npos) b.torch_factor = std::stod(tok.substr(0, star));
    } else {
      std::size_t used = 0;
      const double v = std::stod(tok, &used);
      if (used != tok.size() || !(v >= 0))
        throw Error(ErrorKind::Format, "budget '" + tok + "' is not a number of ULPs or torch");
      b.ulp = std::max(b.ulp, v);
    }
  }
  if (!any) throw Error(ErrorKind::Format, "empty budget in rule '" + rule + "'");
  return b;
}

}  // namespace

void Budgets::add_rule(const std::string& line) {
  const auto w = split_ws(strip_comment(line));
  if (w.empty()) return;
  if (w.size() != 6)
    throw Error(
        ErrorKind::Format,
        "budget rule '" + line + "' needs 6 fields: IMPL LOSS DTYPE REDUCTION DIRECTION BUDGET");
  if (w[4] != "*" && w[4] != "forward" && w[4] != "backward" && w[4].find('*') == std::string::npos)
    throw Error(ErrorKind::Format, "budget rule '" + line + "': direction is forward or backward");
  std::string rule;
  for (const auto& x : w) rule += (rule.empty() ? "" : " ") + x;
  rules_.push_back({w[0], w[1], w[2], w[3], w[4], parse_budget(w[5], rule)});
}

void Budgets::load(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(ErrorKind::Format, path + ": cannot open the budgets file");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '[') {
    ojson j = ojson::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_array())
      throw Error(ErrorKind::Format, path + ": not a JSON array");
    for (const auto& r : j) {
      auto field = [&](const char* k) { return r.contains(k) ? r[k].get<std::string>() : "*"; };
      const std::string budget =
          r["budget"].is_string() ? r["budget"].get<std::string>() : r["budget"].dump();
      add_rule(field("impl") + " " + field("loss") + " " + field("dtype") + " " +
               field("reduction") + " " + field("direction") + " " + budget);
    }
    return;
  }
  std::istringstream lines(text);
  std::string line;
  std::size_t n = 0;
  while (std::getline(lines, line)) {
    ++n;
    try {
      add_rule(line);
    } catch (const Error& e) {
      throw Error(ErrorKind::Format, path + ":" + std::to_string(n) + ": " + e.what());
    }
  }
}

Budget Budgets::resolve(const BudgetKey& k) const {
  for (const auto& r : rules_)
    if (glob_match(r.impl, k.impl) && glob_match(r.loss, k.loss) && glob_match(r.dtype, k.dtype) &&
        glob_match(r.reduction, k.reduction) && glob_match(r.direction, k.direction))
      return r.budget;
  Budget b;
  b.ulp = k.impl == "reference" ? 0.5 : 1.0;
  b.rule = k.impl == "reference" ? "default: reference * * * * 0.5" : "default: * * * * * 1";
  return b;
}

void Xfails::load(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(ErrorKind::Format, path + ": cannot open the xfail file");
  std::string line;
  while (std::getline(in, line)) {
    const auto w = split_ws(strip_comment(line));
    if (w.empty()) continue;
    if (w.size() < 2)
      throw Error(ErrorKind::Format, path + ": '" + line + "' needs IMPL CASE_ID [reason]");
    std::string reason;
    for (std::size_t i = 2; i < w.size(); ++i) reason += (reason.empty() ? "" : " ") + w[i];
    const auto hash = line.find('#');
    if (reason.empty() && hash != std::string::npos) reason = line.substr(hash + 1);
    entries_.push_back({w[0], w[1], reason.empty() ? "expected failure" : reason});
  }
}

std::optional<std::string> Xfails::match(std::string_view impl, std::string_view case_id) const {
  for (const auto& e : entries_)
    if (glob_match(e.impl, impl) && glob_match(e.id, case_id)) return e.reason;
  return std::nullopt;
}

}  // namespace lossbench::conformance
