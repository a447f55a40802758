// lossbench: the command-line program.
#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>

#include "cli.hpp"
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

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kExitOk : kExitBadInput;
  }

  try {
    if (auto code = lossbench::conformance::run_scorer_commands(*scorer, case_path, eval_grad,
                                                                 eval_json))
      return *code;
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
