// lossbench: the command-line program.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "bench.hpp"
#include "cli.hpp"
#include "corpus.hpp"
#include "lossbench/error.hpp"
#include "report.hpp"

namespace {

// Exit codes a CI can rely on.
constexpr int kExitOk = 0;
constexpr int kExitInternal = 1;
constexpr int kExitBadInput = 2;   // malformed case, or an input PyTorch would reject
constexpr int kExitPrecision = 3;  // the reference could not certify a result

std::string read_text(const std::string& path) {
  if (path == "-") {
    return {std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw lossbench::Error(lossbench::ErrorKind::Format, path + ": cannot open the file");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Replaces this process with `PYTHON SRC/reports/report.py ARGS...`. SRC: $LOSSBENCH_SOURCE_DIR,
// else the source folder this program was built from; PYTHON: $LOSSBENCH_REPORT_PYTHON, else
// SRC/.venv-report/bin/python.
int run_report(const std::vector<std::string>& args) {
  const char* src_env = std::getenv("LOSSBENCH_SOURCE_DIR");
  const std::string src = src_env && *src_env ? src_env : LOSSBENCH_SOURCE_DIR;
  const char* py_env = std::getenv("LOSSBENCH_REPORT_PYTHON");
  const std::string python = py_env && *py_env ? py_env : src + "/.venv-report/bin/python";
  const std::string script = src + "/reports/report.py";
  if (!std::filesystem::exists(script)) {
    std::cerr << "lossbench report: " << script
              << " not found (set LOSSBENCH_SOURCE_DIR to lossbench's source folder)\n";
    return kExitBadInput;
  }
  if (access(python.c_str(), X_OK) != 0) {
    std::cerr << "lossbench report: " << python
              << " not found: run scripts/report-venv.sh (or set LOSSBENCH_REPORT_PYTHON)\n";
    return kExitBadInput;
  }
  std::vector<std::string> all{python, script};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::cout.flush();
  execv(python.c_str(), argv.data());
  std::cerr << "lossbench report: cannot run " << python << "\n";
  return kExitInternal;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "lossbench: exact reference, golden corpus, scorer and benchmarks for the 21 "
      "loss functions of PyTorch 2.2"};
  app.require_subcommand(1);

  bool list_json = false;
  auto* list = app.add_subcommand("list", "Show the catalog of losses");
  list->add_flag("--json", list_json, "Print the catalog as JSON");

  std::string case_path;
  bool eval_json = false, eval_grad = false;
  long start_bits = 192;
  auto* eval = app.add_subcommand("eval", "Evaluate one case exactly with the reference");
  eval->add_option("case", case_path, "Case document (JSON), or - for standard input")->required();
  eval->add_flag("--json", eval_json, "Print the result as JSON");
  eval->add_flag("--grad", eval_grad, "Also compute the gradients of the differentiable inputs");
  eval->add_option("--start-bits", start_bits, "First working precision of the certification loop")
      ->check(CLI::Range(64L, 1L << 14));

  // Scoring implementations: `check`, and `eval --impl NAME|PATH` (conformance/).
  auto scorer = lossbench::conformance::add_scorer_commands(app);
  lossbench::conformance::add_eval_impl_option(eval, *scorer);
  // lossbench golden generate|verify|coverage|parity|accuracy (docs/golden.md)
  auto* golden = app.add_subcommand("golden", "Generate, verify and compare the golden corpus");
  golden->require_subcommand(1);
  lossbench::golden::GenerateOptions gen_opts;
  std::string gen_tier = "committed", gen_group, gen_coverage;
  bool gen_no_coverage = false;
  auto* gen = golden->add_subcommand("generate", "Generate the golden corpus from the catalog");
  gen->add_option("--out", gen_opts.out_dir, "Output folder (default golden/corpus)");
  gen->add_option("--tier", gen_tier, "committed (the corpus in the repository) or large")
      ->check(CLI::IsMember({"committed", "large"}));
  gen->add_option("--group", gen_group, "Only this group: smoke, reference, special, hard, error");
  gen->add_option("--loss", gen_opts.loss, "Only this loss (catalog id)");
  gen->add_option("--coverage", gen_coverage,
                  "Where to write the coverage table (default <out>/../COVERAGE.md)");
  gen->add_flag("--no-coverage", gen_no_coverage, "Do not write the coverage table");
  gen->add_flag("--no-reference", gen_opts.no_reference,
                "Write the cases without expected values (generator development)");

  lossbench::golden::VerifyOptions ver_opts;
  auto* ver = golden->add_subcommand("verify", "Check the corpus hashes and re-compute a sample");
  ver->add_option("--dir", ver_opts.dir, "Corpus folder (default golden/corpus)");
  ver->add_option("--sample", ver_opts.sample, "How many cases to re-compute (default 50)");
  ver->add_option("--seed", ver_opts.seed, "Seed of the sample (default 1)");

  std::string cmp_dir = "golden/corpus", cmp_torch = "golden/corpus/torch-2.2.2.jsonl",
              cmp_exceptions = "golden/parity-exceptions.json", cmp_out;
  auto* cov = golden->add_subcommand("coverage", "Print the coverage table of a corpus");
  cov->add_option("--dir", cmp_dir, "Corpus folder (default golden/corpus)");
  auto* par = golden->add_subcommand(
      "parity",
      "Compare the float64 cases with PyTorch's outputs (exit 1 on unexplained differences)");
  par->add_option("--dir", cmp_dir, "Corpus folder (default golden/corpus)");
  par->add_option("--torch", cmp_torch, "PyTorch's outputs (tools/torch_golden.py)");
  par->add_option("--exceptions", cmp_exceptions, "Listed differences and their reasons");
  auto* accu = golden->add_subcommand("accuracy", "Write the accuracy table of PyTorch (Markdown)");
  accu->add_option("--dir", cmp_dir, "Corpus folder (default golden/corpus)");
  accu->add_option("--torch", cmp_torch, "PyTorch's outputs (tools/torch_golden.py)");
  accu->add_option("--out", cmp_out, "Output file (default: standard output)");

  // lossbench report: reports/report.py, run with the venv's python (scripts/report-venv.sh);
  // every argument after `report` goes to it unchanged.
  auto* report = app.add_subcommand(
      "report",
      "Write a report folder (README.md, index.html, plots) from check and bench JSON "
      "(reports/README.md; arguments go to reports/report.py, try report --help)");
  report->allow_extras()->prefix_command()->set_help_flag();

  // lossbench bench [--quick] [--filter GLOB] ... | bench compare BASE NEW (benchmarks/README.md)
  auto bench = lossbench::cli::add_bench_commands(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kExitOk : kExitBadInput;
  }

  try {
    if (auto code =
            lossbench::conformance::run_scorer_commands(*scorer, case_path, eval_grad, eval_json))
      return *code;
    if (*report) return run_report(report->remaining());

    if (*bench->bench) return lossbench::cli::run_bench_commands(*bench);
    if (*list) {
      if (list_json)
        std::cout << lossbench::cli::catalog_json().dump(2) << "\n";
      else
        lossbench::cli::print_catalog(std::cout);
      return kExitOk;
    }
    if (*eval) {
      const lossbench::Case c = lossbench::parse_case(read_text(case_path));
      lossbench::ref::CertifyOptions options;
      options.grad = eval_grad;
      options.start_bits = start_bits;
      const auto result = lossbench::ref::certify(c, options);
      // Everything is computed before anything is printed: an error leaves stdout empty.
      std::ostringstream out;
      if (eval_json)
        out << lossbench::cli::certified_json(c, result).dump(2) << "\n";
      else
        lossbench::cli::print_certified(out, c, result);
      std::cout << out.str();
      return kExitOk;
    }
    if (*gen) {
      namespace lg = lossbench::golden;
      gen_opts.tier = gen_tier == "large" ? lg::Tier::large : lg::Tier::committed;
      if (!gen_group.empty()) {
        lg::Group g;
        if (!lg::parse_group(gen_group, g))
          throw lossbench::Error(lossbench::ErrorKind::Format, "unknown group '" + gen_group + "'");
        gen_opts.group = g;
      }
      if (!gen_opts.loss.empty() && !lossbench::find_loss(gen_opts.loss))
        throw lossbench::Error(lossbench::ErrorKind::Format,
                               "unknown loss '" + gen_opts.loss + "'");
      if (!gen_no_coverage)
        gen_opts.coverage_path =
            !gen_coverage.empty()
                ? gen_coverage
                : (std::filesystem::path(gen_opts.out_dir).parent_path() / "COVERAGE.md").string();
      const auto summary = lg::generate(gen_opts, std::cerr);
      std::cout << "golden: " << summary.cases << " cases written to " << gen_opts.out_dir
                << (summary.skipped_losses.empty()
                        ? std::string()
                        : ", " + std::to_string(summary.skipped_losses.size()) +
                              " losses skipped (reference not written yet)")
                << ", " << summary.warnings.size() << " warnings\n";
      return kExitOk;
    }
    if (*ver) return lossbench::golden::verify(ver_opts, std::cout) == 0 ? kExitOk : kExitInternal;
    if (*cov) {
      std::cout << lossbench::golden::coverage_markdown(cmp_dir);
      return kExitOk;
    }
    if (*par) {
      const auto r = lossbench::golden::parity(cmp_dir, cmp_torch, cmp_exceptions);
      for (const auto& d : r.explained)
        std::cout << "explained    " << d.id << "  " << d.what << "  " << d.detail << "\n";
      for (const auto& d : r.unexplained)
        std::cout << "UNEXPLAINED  " << d.id << "  " << d.what << "  " << d.detail << "\n";
      for (const auto& s : r.stale_exceptions) std::cout << "stale exception: " << s << "\n";
      std::cout << "parity: " << r.compared << " float64 cases compared, " << r.explained.size()
                << " listed differences, " << r.unexplained.size() << " unexplained\n";
      return r.unexplained.empty() ? kExitOk : kExitInternal;
    }
    if (*accu) {
      const std::string md = lossbench::golden::accuracy_markdown(cmp_dir, cmp_torch);
      if (cmp_out.empty())
        std::cout << md;
      else
        std::ofstream(cmp_out, std::ios::binary) << md;
      return kExitOk;
    }
  } catch (const lossbench::Error& e) {
    std::cerr << "lossbench: error [" << lossbench::to_string(e.kind()) << "]: " << e.what()
              << "\n";
    return e.kind() == lossbench::ErrorKind::Precision ? kExitPrecision : kExitBadInput;
  } catch (const std::exception& e) {
    std::cerr << "lossbench: internal error: " << e.what() << "\n";
    return kExitInternal;
  }
  return kExitInternal;
}
