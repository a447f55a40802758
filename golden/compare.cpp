// The reference against PyTorch's recorded outputs (golden/corpus/torch-<version>.jsonl, made
// by tools/torch_golden.py): the float64 parity check and the accuracy table.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <sstream>

#include "corpus.hpp"
#include "lossbench/error.hpp"

namespace lossbench::golden {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

double parse_hex(const ojson& v) {
  const std::string s = v.get<std::string>();
  if (s == "nan") return std::numeric_limits<double>::quiet_NaN();
  if (s == "inf") return kInf;
  if (s == "-inf") return -kInf;
  return std::strtod(s.c_str(), nullptr);
}

DType dtype_of(const ojson& t) {
  auto d = parse_dtype(t["dtype"].get<std::string>());
  return d ? *d : DType::float64;
}

std::string case_dtype(const ojson& doc) {
  for (const auto& [name, t] : doc["inputs"].items())
    if (t["dtype"] != "int64") return t["dtype"].get<std::string>();
  return "int64";
}

struct TorchFile {
  ojson header;
  std::map<std::string, ojson> records;
};

TorchFile read_torch(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(ErrorKind::Format, path + ": cannot open PyTorch's outputs");
  TorchFile f;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    ojson j = ojson::parse(line);
    if (j.contains("header")) {
      f.header = j["header"];
      continue;
    }
    if (!j.contains("id") || !j["id"].is_string())
      throw Error(ErrorKind::Format, path + ": a line without an id: " + line.substr(0, 120));
    std::string id = j["id"].get<std::string>();
    f.records[id] = std::move(j);
  }
  return f;
}

// Worst element error of torch's tensor `got` against the expected tensor, in ULPs; a shape
// mismatch counts as infinite.
double tensor_error(const ojson& got, const ojson& expected) {
  if (got["shape"] != expected["shape"]) return kInf;
  const DType dt = dtype_of(expected);
  const auto& data = got["data"];
  const auto& hi = expected["hi"];
  const auto& lo = expected["lo"];
  if (data.size() != hi.size()) return kInf;
  double worst = 0;
  for (std::size_t i = 0; i < data.size(); ++i)
    worst = std::max(worst, ulp_error(parse_hex(data[i]), parse_hex(hi[i]), parse_hex(lo[i]), dt));
  return worst;
}

bool glob(std::string_view pattern, std::string_view text) {
  if (pattern.empty()) return text.empty();
  if (pattern[0] == '*') {
    for (std::size_t i = 0; i <= text.size(); ++i)
      if (glob(pattern.substr(1), text.substr(i))) return true;
    return false;
  }
  return !text.empty() && pattern[0] == text[0] && glob(pattern.substr(1), text.substr(1));
}

std::string fmt(double v) {
  if (std::isinf(v)) return "inf";
  char b[32];
  std::snprintf(b, sizeof b, v < 10 ? "%.2g" : "%.3g", v);
  return b;
}

// The per-case worst errors of torch's output and gradients, or why there are none.
struct CaseErrors {
  std::string status;  // "ok", "error", "unsupported", "missing"
  std::string message;
  std::optional<double> output;
  std::map<std::string, double> grads;
  std::vector<std::string> missing_grads;
};

CaseErrors case_errors(const ojson& line, const TorchFile& torch) {
  CaseErrors e;
  auto it = torch.records.find(line["id"].get<std::string>());
  if (it == torch.records.end()) {
    e.status = "missing";
    return e;
  }
  const ojson& rec = it->second;
  e.status = rec.value("status", "error");
  if (rec.contains("error")) e.message = rec["error"].value("message", "");
  if (e.status != "ok" || !line.contains("expected")) return e;
  e.output = tensor_error(rec["output"], line["expected"]["output"]);
  for (const auto& [name, t] : line["expected"]["grad"].items()) {
    if (rec.contains("grad") && rec["grad"].contains(name))
      e.grads[name] = tensor_error(rec["grad"][name], t);
    else
      e.missing_grads.push_back(name);
  }
  return e;
}

}  // namespace

double ulp_error(double got, double hi, double lo, DType dtype) {
  if (std::isnan(hi) || std::isnan(got)) return std::isnan(hi) && std::isnan(got) ? 0 : kInf;
  if (std::isinf(hi) || std::isinf(got)) return hi == got ? 0 : kInf;
  const auto f = format_of(dtype);
  // The binade of the exact value hi + lo (below hi's when hi is a power of two and lo < 0).
  int e = hi == 0 ? f.emin : std::ilogb(hi);
  if (hi != 0 && std::fabs(hi) == std::ldexp(1.0, e) &&
      (lo != 0 && std::signbit(lo) != std::signbit(hi)))
    --e;
  e = std::max(e, f.emin);
  const double ulp = std::ldexp(1.0, e - f.precision + 1);
  return std::fabs((got - hi) - lo) / ulp;
}

ParityResult parity(const std::string& dir, const std::string& torch_path,
                    const std::string& exceptions_path) {
  const auto lines = read_corpus(dir);
  const TorchFile torch = read_torch(torch_path);
  ojson ex = ojson::object();
  if (!exceptions_path.empty()) {
    std::ifstream in(exceptions_path);
    if (in) ex = ojson::parse(in);
  }
  const double tol = ex.value("tolerance_ulp", 4.0);
  const ojson entries = ex.value("exceptions", ojson::array());
  std::vector<std::size_t> used(entries.size(), 0);
  ParityResult r;
  auto report = [&](Difference d) {
    for (std::size_t i = 0; i < entries.size(); ++i) {
      const auto& x = entries[i];
      if (glob(x.value("id", "*"), d.id) && glob(x.value("what", "*"), d.what)) {
        const double cap =
            x.contains("max_ulp") && x["max_ulp"].is_number() ? x["max_ulp"].get<double>() : kInf;
        if (d.ulp <= cap) {
          ++used[i];
          d.detail += " [" + x.value("reason", "") + "]";
          r.explained.push_back(std::move(d));
          return;
        }
      }
    }
    r.unexplained.push_back(std::move(d));
  };
  for (const auto& line : lines) {
    if (case_dtype(line["case"]) != "float64") continue;
    const std::string id = line["id"].get<std::string>();
    const CaseErrors e = case_errors(line, torch);
    if (e.status == "missing") continue;
    ++r.compared;
    if (line.contains("expected_error")) {
      if (e.status == "ok")
        report({id, "error", 0,
                "the reference rejects (" + line["expected_error"]["class"].get<std::string>() +
                    ": " + line["expected_error"]["message"].get<std::string>() +
                    ") but PyTorch returns a value"});
      continue;
    }
    if (e.status != "ok") {
      report({id, "error", kInf, "PyTorch " + e.status + ": " + e.message});
      continue;
    }
    if (*e.output > tol) report({id, "output", *e.output, fmt(*e.output) + " ulp"});
    for (const auto& [name, u] : e.grads)
      if (u > tol) report({id, "grad." + name, u, fmt(u) + " ulp"});
    for (const auto& name : e.missing_grads)
      report({id, "grad." + name, kInf, "PyTorch returned no gradient"});
  }
  for (std::size_t i = 0; i < entries.size(); ++i)
    if (!used[i]) r.stale_exceptions.push_back(entries[i].dump());
  return r;
}

std::string accuracy_markdown(const std::string& dir, const std::string& torch_path) {
  const auto lines = read_corpus(dir);
  const TorchFile torch = read_torch(torch_path);
  struct Acc {
    std::size_t cases = 0, ok = 0, unsupported = 0, errors = 0, out_class = 0, grad_class = 0;
    std::vector<double> out, grad;
  };
  std::map<std::string, std::map<std::string, Acc>> acc;
  for (const auto& line : lines) {
    if (!line.contains("expected")) continue;
    const std::string loss = line["case"]["loss"].get<std::string>();
    const std::string dt = case_dtype(line["case"]);
    const CaseErrors e = case_errors(line, torch);
    if (e.status == "missing") continue;
    Acc& a = acc[loss][dt];
    ++a.cases;
    if (e.status == "unsupported") {
      ++a.unsupported;
      continue;
    }
    if (e.status != "ok") {
      ++a.errors;
      continue;
    }
    ++a.ok;
    if (std::isinf(*e.output))
      ++a.out_class;
    else
      a.out.push_back(*e.output);
    double g = 0;
    bool any = false, cls = false;
    for (const auto& [name, u] : e.grads) {
      any = true;
      if (std::isinf(u))
        cls = true;
      else
        g = std::max(g, u);
    }
    if (cls)
      ++a.grad_class;
    else if (any)
      a.grad.push_back(g);
  }
  auto stats = [](std::vector<double> v) -> std::string {
    if (v.empty()) return "- | -";
    std::sort(v.begin(), v.end());
    return fmt(v.back()) + " | " + fmt(v[(v.size() - 1) / 2]);
  };
  std::ostringstream md;
  md << "# Accuracy of PyTorch " << torch.header.value("torch_version", "?") << " (CPU)\n\n"
     << "Generated by `lossbench golden accuracy` from the golden corpus and PyTorch's outputs ("
     << "`tools/torch_golden.py`); do not edit. Errors are in ULPs of the case's dtype against "
        "the exact value (the corpus's double-double), taken per case as the worst element; "
        "max and median are over the cases. \"class\" counts cases where a NaN, an infinity or "
        "a shape differs (infinitely wrong), which the ULP columns leave out; \"unsupp.\" counts "
        "cases PyTorch does not run for that dtype, \"err.\" those it rejects although the "
        "reference accepts them.\n\n";
  md << "Torch: " << torch.header.dump() << "\n\n";
  md << "| loss | dtype | cases | unsupp. | err. | output max | output median | output class | "
        "grad max | grad median | grad class |\n"
     << "|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& loss : catalog())
    for (DType d : kFloatDTypes) {
      const std::string id(loss.name), dt(to_string(d));
      if (!acc.count(id) || !acc[id].count(dt)) continue;
      const Acc& a = acc[id][dt];
      md << "| " << id << " | " << dt << " | " << a.cases << " | " << a.unsupported << " | "
         << a.errors << " | " << stats(a.out) << " | " << a.out_class << " | " << stats(a.grad)
         << " | " << a.grad_class << " |\n";
    }
  return md.str();
}

}  // namespace lossbench::golden
