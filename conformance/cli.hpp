#pragma once
// The scorer's subcommands, for any CLI11 program (lossbench, lossbench-check):
//
//   auto scorer = lossbench::conformance::add_scorer_commands(app);
//   lossbench::conformance::add_eval_impl_option(eval_subcommand, *scorer);  // optional
//   app.parse(argc, argv);
//   if (auto code = lossbench::conformance::run_scorer_commands(*scorer)) return *code;
#include <CLI/CLI.hpp>
#include <memory>
#include <optional>
#include <string>

#include "conformance.hpp"

namespace lossbench::conformance {

struct ScorerCommands {
  CLI::App* check = nullptr;
  CheckOptions check_options;
  std::string shard;         // "i/n"
  CLI::App* eval = nullptr;  // an eval subcommand given --impl, if any
  EvalOptions eval_options;
  std::string eval_impl;  // empty: the caller's own eval (the reference) handles it
  CLI::App* fuzz = nullptr;
  FuzzOptions fuzz_options;
  std::string fuzz_shard;  // "i/n"
};

// Registers `check` and `fuzz` on `app`. The returned object must outlive app.parse().
std::unique_ptr<ScorerCommands> add_scorer_commands(CLI::App& app);

// Adds `--impl NAME|PATH` and `--timeout` to an existing eval subcommand (which has its own
// positional case path, --grad and --json: pass references to them).
void add_eval_impl_option(CLI::App* eval, ScorerCommands& commands);

// After parsing: the exit code when a scorer command ran (check, fuzz, or eval with --impl other
// than "reference"... any --impl), std::nullopt when none did. `case_path`, `grad`, `json` are the
// caller's eval values.
std::optional<int> run_scorer_commands(ScorerCommands& commands, const std::string& case_path = {},
                                       bool grad = false, bool json = false);

}  // namespace lossbench::conformance
