#include "cli.hpp"

#include <iostream>

namespace lossbench::conformance {

std::unique_ptr<ScorerCommands> add_scorer_commands(CLI::App& app) {
  auto cmds = std::make_unique<ScorerCommands>();
  CheckOptions& o = cmds->check_options;
  auto* check = app.add_subcommand(
      "check", "Score an implementation against the golden corpus (ULP errors, budgets, verdicts)");
  check
      ->add_option("--impl", o.impl,
                   "Implementation: a registered name (reference, cpu, cuda...) or a plugin .so")
      ->capture_default_str();
  check->add_option("--golden", o.golden, "Corpus directory (manifest.json + *.jsonl)")
      ->capture_default_str();
  check->add_option("--filter", o.filter,
                    "Only cases whose id matches this glob (e.g. 'mse_loss/*')");
  check->add_option("--budgets", o.budgets, "Budgets file (docs/scorer.md)");
  check->add_option("--xfail", o.xfail, "Expected failures: lines 'IMPL_GLOB CASE_ID_GLOB reason'");
  check->add_option("--json", o.json_out, "Write the full report as JSON");
  check->add_option("--junit", o.junit_out, "Write a JUnit XML report");
  check->add_option("--timeout", o.timeout, "Seconds per case in a child process")
      ->capture_default_str();
  check->add_option(
      "--results", o.results,
      "Score a results file (JSON lines an external adapter wrote) instead of running");
  check->add_option("--write-results", o.write_results,
                    "Also write the implementation's outputs as a results file");
  check->add_option("--torch", o.torch,
                    "PyTorch's outputs for 'torch' budgets (default GOLDEN/torch-2.2.2.jsonl)");
  check->add_option("--repro-dir", o.repro_dir, "Where failing cases are written as case files")
      ->capture_default_str();
  check->add_option("--shard", cmds->shard, "Run shard i of n (i/n, 0-based)");
  check->add_flag("--isolate", o.isolate, "Run built-in implementations in a child process too");
  check->add_flag("-v,--verbose", o.verbose, "A line for every case");
  cmds->check = check;

  FuzzOptions& f = cmds->fuzz_options;
  auto* fuzz = app.add_subcommand(
      "fuzz",
      "Score an implementation on random cases from the golden generators, exact values computed "
      "on the fly");
  fuzz->add_option("--impl", f.impl, "Implementation: a registered name or a plugin .so")
      ->capture_default_str();
  fuzz->add_option("--loss", f.loss, "Loss id, glob over ids ('*': all) or comma list")->required();
  fuzz->add_option("--seconds", f.seconds, "Stop drawing new cases after this many seconds")
      ->capture_default_str();
  fuzz->add_option("--cases", f.cases, "At most this many cases (0: until --seconds)")
      ->capture_default_str();
  fuzz->add_option("--seed", f.seed, "Seed: the same seed draws the same cases")
      ->capture_default_str();
  fuzz->add_option("--keep", f.keep_dir,
                   "Where the worst cases are written (case files and worst.jsonl)")
      ->capture_default_str();
  fuzz->add_option("--keep-worst", f.keep_worst, "How many of the worst cases to keep")
      ->capture_default_str();
  fuzz->add_option("--shard", cmds->fuzz_shard, "Draw shard i of n (i/n, 0-based)");
  fuzz->add_option("--budgets", f.budgets, "Budgets file (docs/scorer.md)");
  fuzz->add_option("--timeout", f.timeout, "Seconds per case in a child process")
      ->capture_default_str();
  fuzz->add_flag("--isolate", f.isolate, "Run built-in implementations in a child process too");
  fuzz->add_flag("-v,--verbose", f.verbose, "A line for every case");
  cmds->fuzz = fuzz;
  return cmds;
}

void add_eval_impl_option(CLI::App* eval, ScorerCommands& commands) {
  commands.eval = eval;
  eval->add_option("--impl", commands.eval_impl,
                   "Evaluate with this implementation and show its ULP errors");
  eval->add_option("--timeout", commands.eval_options.timeout, "Seconds, for a plugin");
}

namespace {

bool parse_shard(const std::string& text, int& index, int& count) {
  if (text.empty()) return true;
  const auto slash = text.find('/');
  try {
    if (slash == std::string::npos) throw std::invalid_argument("no /");
    index = std::stoi(text.substr(0, slash));
    count = std::stoi(text.substr(slash + 1));
  } catch (const std::exception&) {
    return false;
  }
  return true;
}

}  // namespace

std::optional<int> run_scorer_commands(ScorerCommands& c, const std::string& case_path, bool grad,
                                       bool json) {
  if (c.check != nullptr && c.check->parsed()) {
    if (!parse_shard(c.shard, c.check_options.shard_index, c.check_options.shard_count)) {
      std::cerr << "lossbench check: --shard wants i/n, not '" << c.shard << "'\n";
      return 2;
    }
    return run_check(c.check_options, std::cout, std::cerr);
  }
  if (c.fuzz != nullptr && c.fuzz->parsed()) {
    if (!parse_shard(c.fuzz_shard, c.fuzz_options.shard_index, c.fuzz_options.shard_count)) {
      std::cerr << "lossbench fuzz: --shard wants i/n, not '" << c.fuzz_shard << "'\n";
      return 2;
    }
    return run_fuzz(c.fuzz_options, std::cout, std::cerr);
  }
  if (c.eval != nullptr && c.eval->parsed() && !c.eval_impl.empty()) {
    EvalOptions o = c.eval_options;
    o.impl = c.eval_impl;
    o.case_path = case_path;
    o.grad = grad;
    o.json = json;
    return run_eval(o, std::cout, std::cerr);
  }
  return std::nullopt;
}

}  // namespace lossbench::conformance
