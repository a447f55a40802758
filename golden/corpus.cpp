// Generation, file format and verification of the golden corpus (docs/golden.md).
#include "corpus.hpp"

#include <mpfr.h>
#include <openssl/evp.h>

#include <algorithm>
#include <boost/version.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <utility>

#include "lossbench/error.hpp"
#include "reference.hpp"

namespace lossbench::golden {

namespace fs = std::filesystem;

std::uint64_t group_seed(Group g) {
  switch (g) {
    case Group::smoke: return 0x5a0c0e0000000001ULL;
    case Group::reference: return 0x5a0c0e0000000002ULL;
    case Group::special: return 0x5a0c0e0000000003ULL;
    case Group::hard: return 0x5a0c0e0000000004ULL;
    case Group::error: return 0x5a0c0e0000000005ULL;
  }
  return 0;
}

std::uint64_t loss_seed(Group g, Tier tier, std::string_view loss) {
  return group_seed(g) ^ fnv1a(loss) ^ (tier == Tier::large ? fnv1a("large") : 0);
}

const char* gradient_caveat(std::string_view loss) {
  if (loss == "ctc_loss")
    return "PyTorch's gradient of log_probs is the gradient through log_softmax "
           "(exp(log_probs) - posterior), not the partial derivative; equal only for normalised "
           "log_probs";
  if (loss == "binary_cross_entropy")
    return "PyTorch's gradient is (x - y) / max(x (1 - x), 1e-12), not the derivative of the "
           "clamped logarithms near x = 0 and x = 1";
  return nullptr;
}

namespace {

bool not_written(const Error& e) {
  return std::string_view(e.what()).find("not written yet") != std::string_view::npos;
}

// lo = (exact - hi) rounded to float64, with hi the exact value rounded to float64.
double low_part(const ref::Real& v, double hi) {
  mpfr_srcptr x = v.backend().data();
  if (!std::isfinite(hi) || !mpfr_number_p(x)) return 0.0;
  mpfr_t d;
  mpfr_init2(d, mpfr_get_prec(x) + 2200);  // wide enough for the difference to be exact
  mpfr_sub_d(d, x, hi, MPFR_RNDN);
  const double lo = mpfr_get_d(d, MPFR_RNDN);
  mpfr_clear(d);
  return lo == 0.0 ? 0.0 : lo;
}

ojson tensor_json(const ref::CertifiedTensor& t) {
  ojson j;
  j["dtype"] = to_string(t.dtype);
  j["shape"] = t.shape;
  auto rounded = ojson::array(), hi = ojson::array(), lo = ojson::array();
  for (std::size_t i = 0; i < t.values.size(); ++i) {
    const auto& v = t.values[i];
    rounded.push_back(hex_string(t.rounded_value(i)));
    hi.push_back(hex_string(v.rounded[0]));
    lo.push_back(hex_string(low_part(v.value, v.rounded[0])));
  }
  j["rounded"] = std::move(rounded);
  j["hi"] = std::move(hi);
  j["lo"] = std::move(lo);
  return j;
}

// sum |t| / |sum t| of the per-element terms (reduction "none"); null when undefined.
ojson condition_of(const Case& c) {
  if (c.reduction == "none") return nullptr;
  Case terms_case = c;
  terms_case.reduction = "none";
  terms_case.grad_output.reset();
  const auto terms = ref::certify(terms_case).output;
  if (terms.values.empty()) return nullptr;
  std::vector<ref::Real> t, a;
  for (const auto& v : terms.values) {
    if (!ref::isfinite(v.value)) return nullptr;
    t.push_back(v.value);
    a.push_back(abs(v.value));
  }
  const ref::Real s = ref::sum(t);
  if (ref::iszero(s)) return nullptr;
  const ref::Real r = ref::sum(a) / abs(s);
  return mpfr_get_d(r.backend().data(), MPFR_RNDN);
}

}  // namespace

ojson compute_expected(const ojson& case_doc) {
  ojson out;
  Case c;
  ref::Certified result;
  try {
    c = parse_case(case_doc.dump());
    ref::CertifyOptions options;
    options.grad = true;
    result = ref::certify(c, options);
  } catch (const Error& e) {
    if (not_written(e)) throw;
    if (e.kind() == ErrorKind::Precision) throw;
    out["expected_error"] = {{"class", to_string(e.kind())}, {"message", e.what()}};
    out["condition"] = nullptr;
    return out;
  }
  ojson expected;
  expected["output"] = tensor_json(result.output);
  ojson grads = ojson::object();
  for (const auto& [name, t] : result.grads) grads[name] = tensor_json(t);
  expected["grad"] = std::move(grads);
  out["expected"] = std::move(expected);
  out["condition"] = condition_of(c);
  return out;
}

bool reference_available(const LossInfo& loss) {
  Gen g(loss, Group::smoke, Tier::committed, loss_seed(Group::smoke, Tier::committed, loss.name));
  generate_loss(g);
  if (g.cases().empty()) return true;
  try {
    compute_expected(g.cases().front().doc());
  } catch (const Error& e) {
    return !not_written(e);
  }
  return true;
}

// ---- SHA-256 ----

std::string sha256_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorKind::Format, path + ": cannot open the file");
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::vector<char> buf(1 << 16);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    EVP_DigestUpdate(ctx, buf.data(), static_cast<std::size_t>(in.gcount()));
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (unsigned i = 0; i < len; ++i) s += hex[md[i] >> 4], s += hex[md[i] & 15];
  return s;
}

// ---- generation ----

namespace {

std::string case_id(std::string_view loss, Group g, std::size_t n) {
  char num[16];
  std::snprintf(num, sizeof num, "%04zu", n);
  return std::string(loss) + "/" + std::string(to_string(g)) + "/" + num;
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  if (!out) throw Error(ErrorKind::Format, path + ": cannot write the file");
  out << text;
}

std::string mpfr_lib_version() { return mpfr_get_version(); }
std::string boost_version() {
  return std::to_string(BOOST_VERSION / 100000) + "." + std::to_string(BOOST_VERSION / 100 % 1000) +
         "." + std::to_string(BOOST_VERSION % 100);
}

}  // namespace

GenerateSummary generate(const GenerateOptions& options, std::ostream& log) {
  GenerateSummary summary;
  fs::create_directories(options.out_dir);
  ojson files = ojson::array();
  std::map<std::string, std::size_t> per_loss;
  std::set<std::string> skipped;
  for (Group group : kGroups) {
    if (options.group && *options.group != group) continue;
    std::ostringstream text;
    std::size_t cases = 0, errors = 0;
    for (const auto& loss : catalog()) {
      if (!options.loss.empty() && loss.name != options.loss) continue;
      if (skipped.count(std::string(loss.name))) continue;
      Gen g(loss, group, options.tier, loss_seed(group, options.tier, loss.name));
      generate_loss(g);
      std::size_t n = 0;
      bool skip_loss = false;
      std::ostringstream lines;
      for (const CaseBuilder& b : g.cases()) {
        ojson line;
        line["id"] = case_id(loss.name, group, n);
        line["group"] = to_string(group);
        line["case"] = b.doc();
        ojson notes = b.notes();
        if (!options.no_reference) {
          ojson result;
          try {
            result = compute_expected(b.doc());
          } catch (const Error& e) {
            if (e.kind() == ErrorKind::Precision) {
              summary.warnings.push_back(line["id"].get<std::string>() + ": skipped: " + e.what());
              continue;
            }
            skip_loss = true;  // reference not written yet
            break;
          }
          const bool is_error = result.contains("expected_error");
          if (is_error && b.expected_error().empty()) {
            summary.warnings.push_back(std::string(loss.name) + " (" +
                                       std::string(to_string(group)) +
                                       "): a value case was rejected, dropped: " +
                                       result["expected_error"]["message"].get<std::string>() +
                                       "  case: " + b.doc().dump().substr(0, 160) + "...");
            continue;
          }
          if (!is_error && !b.expected_error().empty()) {
            summary.warnings.push_back(std::string(loss.name) + ": an error case (" +
                                       b.notes().front() + ") was accepted, dropped");
            continue;
          }
          if (is_error) {
            const auto cls = result["expected_error"]["class"].get<std::string>();
            if (cls != b.expected_error())
              summary.warnings.push_back(line["id"].get<std::string>() + " (" + b.notes().front() +
                                         "): generator expected " + b.expected_error() +
                                         ", the reference says " + cls);
            line["expected_error"] = result["expected_error"];
          } else {
            line["expected"] = result["expected"];
            if (const char* caveat = gradient_caveat(loss.name))
              notes.push_back(std::string("gradient: ") + caveat);
            if (!result["condition"].is_null())
              notes.push_back("condition from the reduction-none terms");
          }
          line["condition"] = result["condition"];
        } else {
          if (!b.expected_error().empty())
            line["expected_error"] = {{"class", b.expected_error()}, {"message", ""}};
          line["condition"] = nullptr;
        }
        line["notes"] = std::move(notes);
        lines << line.dump() << "\n";
        if (line.contains("expected_error")) ++errors;
        ++n;
      }
      if (skip_loss) {
        skipped.insert(std::string(loss.name));
        log << "golden: warning: the reference of " << loss.name
            << " is not written yet; its cases are skipped\n";
        continue;
      }
      text << lines.str();
      cases += n;
      per_loss[std::string(loss.name)] += n;
      log << "golden: " << to_string(group) << " " << loss.name << ": " << n << " cases\n";
    }
    const std::string name = std::string(to_string(group)) + ".jsonl";
    const std::string path = (fs::path(options.out_dir) / name).string();
    write_text(path, text.str());
    files.push_back({{"name", name},
                     {"group", to_string(group)},
                     {"seed", group_seed(group)},
                     {"sha256", sha256_file(path)},
                     {"bytes", fs::file_size(path)},
                     {"cases", cases},
                     {"error_cases", errors}});
    summary.cases += cases;
  }
  ojson manifest;
  manifest["schema_version"] = kSchemaVersion;
  manifest["generator_version"] = kGeneratorVersion;
  manifest["tier"] = options.tier == Tier::committed ? "committed" : "large";
  manifest["mpfr_version"] = mpfr_lib_version();
  manifest["boost_version"] = boost_version();
  manifest["rng"] = "std::mt19937_64 raw output; per-loss seed = group seed ^ FNV-1a-64(loss id)";
  ojson seeds = ojson::object();
  for (Group g : kGroups) seeds[std::string(to_string(g))] = group_seed(g);
  manifest["seeds"] = std::move(seeds);
  manifest["filter"] = {
      {"group", options.group ? ojson(to_string(*options.group)) : ojson(nullptr)},
      {"loss", options.loss.empty() ? ojson(nullptr) : ojson(options.loss)}};
  manifest["files"] = std::move(files);
  manifest["counts"] = {{"cases", summary.cases}, {"per_loss", per_loss}};
  manifest["skipped_losses"] = ojson(std::vector<std::string>(skipped.begin(), skipped.end()));
  manifest["reader"] = "docs/golden.md";
  write_text((fs::path(options.out_dir) / "manifest.json").string(), manifest.dump(2) + "\n");
  summary.skipped_losses.assign(skipped.begin(), skipped.end());
  for (const auto& w : summary.warnings) log << "golden: warning: " << w << "\n";
  if (!options.coverage_path.empty())
    write_text(options.coverage_path, coverage_markdown(options.out_dir));
  return summary;
}

// ---- reading and verification ----

ojson read_manifest(const std::string& dir) {
  const std::string path = (fs::path(dir) / "manifest.json").string();
  std::ifstream in(path);
  if (!in) throw Error(ErrorKind::Format, path + ": cannot open the manifest");
  ojson m = ojson::parse(in);
  const int v = m.value("schema_version", 0);
  if (v != kSchemaVersion)
    throw Error(ErrorKind::Format, path + ": schema_version " + std::to_string(v) +
                                       ", this lossbench reads " + std::to_string(kSchemaVersion) +
                                       "; regenerate with `lossbench golden generate --out " + dir +
                                       "`");
  return m;
}

std::vector<ojson> read_corpus(const std::string& dir) {
  const ojson m = read_manifest(dir);
  std::vector<ojson> all;
  for (const auto& f : m["files"]) {
    std::ifstream in(fs::path(dir) / f["name"].get<std::string>());
    std::string line;
    while (std::getline(in, line))
      if (!line.empty()) all.push_back(ojson::parse(line));
  }
  return all;
}

std::size_t verify(const VerifyOptions& options, std::ostream& log) {
  std::size_t problems = 0;
  auto fail = [&](const std::string& msg) {
    log << "golden verify: FAIL: " << msg << "\n";
    ++problems;
  };
  ojson m;
  try {
    m = read_manifest(options.dir);
  } catch (const std::exception& e) {
    fail(e.what());
    return problems;
  }
  std::vector<ojson> lines;
  for (const auto& f : m["files"]) {
    const std::string name = f["name"].get<std::string>();
    const std::string path = (fs::path(options.dir) / name).string();
    if (!fs::exists(path)) {
      fail(name + ": missing");
      continue;
    }
    const std::string sha = sha256_file(path);
    if (sha != f["sha256"].get<std::string>())
      fail(name + ": SHA-256 " + sha + " but the manifest says " + f["sha256"].get<std::string>());
    std::ifstream in(path);
    std::string line;
    std::size_t n = 0;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      ++n;
      lines.push_back(ojson::parse(line));
    }
    if (n != f["cases"].get<std::size_t>())
      fail(name + ": " + std::to_string(n) + " cases but the manifest says " + f["cases"].dump());
  }
  log << "golden verify: " << m["files"].size() << " files, " << lines.size()
      << " cases, hashes checked\n";
  // Re-compute a sample.
  std::vector<std::size_t> order(lines.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  Rng rng(options.seed);
  for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
  const std::size_t k = std::min(options.sample, order.size());
  std::sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k));
  std::size_t checked = 0;
  for (std::size_t s = 0; s < k; ++s) {
    const ojson& line = lines[order[s]];
    const std::string id = line.value("id", "?");
    ojson got;
    try {
      got = compute_expected(line["case"]);
    } catch (const std::exception& e) {
      fail(id + ": the reference failed: " + e.what());
      continue;
    }
    for (const char* key : {"expected", "expected_error", "condition"}) {
      const bool a = line.contains(key), b = got.contains(key);
      if (a != b || (a && line[key].dump() != got[key].dump())) {
        fail(id + ": '" + key + "' differs from the reference's (recorded " +
             (a ? line[key].dump().substr(0, 200) : "absent") + ", now " +
             (b ? got[key].dump().substr(0, 200) : "absent") + ")");
      }
    }
    ++checked;
  }
  log << "golden verify: " << checked << " sampled cases re-computed (seed " << options.seed
      << ")\n";
  log << "golden verify: " << (problems ? "FAILED" : "ok") << ", " << problems << " problems\n";
  return problems;
}

// ---- random cases (lossbench fuzz) ----

RandomCase random_case(const LossInfo& loss, std::uint64_t seed) {
  RandomCase out;
  Rng draw(seed ^ 0x6675'7a7a'6c6f'7373ULL);  // "fuzzloss": the draw, apart from the values
  // Weighted groups (out of 10); one without cases for this loss is drawn again.
  constexpr std::pair<Group, int> kWeights[] = {{Group::smoke, 1},
                                                {Group::reference, 4},
                                                {Group::special, 3},
                                                {Group::hard, 1},
                                                {Group::error, 1}};
  for (int attempt = 0; attempt < 64; ++attempt) {
    std::uint64_t r = draw.below(10);
    Group group = Group::reference;
    for (const auto& [g, w] : kWeights) {
      if (r < static_cast<std::uint64_t>(w)) {
        group = g;
        break;
      }
      r -= static_cast<std::uint64_t>(w);
    }
    Gen g(loss, group, Tier::committed, draw.bits());
    generate_loss(g);
    if (g.cases().empty()) continue;
    const std::size_t pick = static_cast<std::size_t>(draw.below(g.cases().size()));
    const CaseBuilder& b = g.cases()[pick];
    char hex[24];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(seed));
    ojson line;
    line["id"] = std::string(loss.name) + "/fuzz/" + hex;
    line["group"] = to_string(group);
    line["case"] = b.doc();
    ojson notes = b.notes();
    notes.push_back("fuzz: seed 0x" + std::string(hex) + ", group " +
                    std::string(to_string(group)) + ", case " + std::to_string(pick) + " of " +
                    std::to_string(g.cases().size()));
    ojson result;
    try {
      result = compute_expected(b.doc());
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::Precision) throw;
      out.dropped = "cannot be certified: " + std::string(e.what());
      return out;
    }
    const bool is_error = result.contains("expected_error");
    if (is_error && b.expected_error().empty()) {
      out.dropped = "a value case the reference rejects: " +
                    result["expected_error"]["message"].get<std::string>();
      return out;
    }
    if (!is_error && !b.expected_error().empty()) {
      out.dropped = "an error case the reference accepts";
      return out;
    }
    if (is_error) {
      line["expected_error"] = result["expected_error"];
    } else {
      line["expected"] = result["expected"];
      if (const char* caveat = gradient_caveat(loss.name))
        notes.push_back(std::string("gradient: ") + caveat);
      if (!result["condition"].is_null())
        notes.push_back("condition from the reduction-none terms");
    }
    line["condition"] = result["condition"];
    line["notes"] = std::move(notes);
    out.line = std::move(line);
    return out;
  }
  out.dropped = "the generator makes no case of this loss";
  return out;
}

}  // namespace lossbench::golden
