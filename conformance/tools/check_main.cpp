// lossbench-check: the scorer's commands on their own (lossbench folds them in later).
#include <CLI/CLI.hpp>
#include <iostream>

#include "cli.hpp"

int main(int argc, char** argv) {
  CLI::App app{"lossbench-check: score loss implementations against the exact reference"};
  app.require_subcommand(1);
  auto scorer = lossbench::conformance::add_scorer_commands(app);
  std::string case_path;
  bool grad = false, json = false;
  auto* eval =
      app.add_subcommand("eval", "One case through an implementation, beside the exact values");
  eval->add_option("case", case_path, "Case document (JSON)")->required();
  eval->add_flag("--grad", grad, "Also the gradients");
  eval->add_flag("--json", json, "Print JSON");
  lossbench::conformance::add_eval_impl_option(eval, *scorer);
  bool list = false;
  auto* impls = app.add_subcommand("impls", "List the registered implementations");
  impls->callback([&] { list = true; });
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (list) {
    for (const auto& n : lossbench::conformance::registered_implementations())
      std::cout << n << "\n";
    return 0;
  }
  if (*eval && scorer->eval_impl.empty()) scorer->eval_impl = "reference";
  if (auto code = lossbench::conformance::run_scorer_commands(*scorer, case_path, grad, json))
    return *code;
  return 1;
}
