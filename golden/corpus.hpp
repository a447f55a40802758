#pragma once
// The golden corpus: generation (driven by the catalog and golden/generators/), the file format
// (docs/golden.md), verification, the coverage table, and the comparison with PyTorch's outputs.
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "gen.hpp"

namespace lossbench::golden {

inline constexpr int kSchemaVersion = 1;
inline constexpr const char* kGeneratorVersion = "1.0.0";

// The recorded seed of each group (per-loss seeds derive from it and the loss id).
std::uint64_t group_seed(Group g);
std::uint64_t loss_seed(Group g, Tier tier, std::string_view loss);

// Losses whose PyTorch gradient is not the mathematical derivative of the forward function,
// and why (the corpus notes it beside their cases).
const char* gradient_caveat(std::string_view loss);

// The expected result of a case document: {"expected": ...} or {"expected_error": ...},
// plus "condition". Throws Error for a loss whose reference is not written yet.
ojson compute_expected(const ojson& case_doc);

// Does the reference of this loss exist (false while it throws "not written yet")?
bool reference_available(const LossInfo& loss);

struct GenerateOptions {
  std::string out_dir = "golden/corpus";
  std::string coverage_path;  // empty: no coverage table
  Tier tier = Tier::committed;
  std::optional<Group> group;  // only this group
  std::string loss;            // only this loss (id)
  bool no_reference = false;   // write the cases without expected values (generator work)
};

struct GenerateSummary {
  std::size_t cases = 0;
  std::vector<std::string> skipped_losses;  // reference not written yet
  std::vector<std::string> warnings;
};

GenerateSummary generate(const GenerateOptions& options, std::ostream& log);

struct VerifyOptions {
  std::string dir = "golden/corpus";
  std::size_t sample = 50;  // cases re-computed (0: none; more than the corpus: all)
  std::uint64_t seed = 1;
};

// Returns the number of problems found (each is printed, naming the case or file).
std::size_t verify(const VerifyOptions& options, std::ostream& log);

// The coverage table (Markdown) of the corpus in `dir`.
std::string coverage_markdown(const std::string& dir);

// SHA-256 of a file, lowercase hex.
std::string sha256_file(const std::string& path);

// Reads the lines of golden/corpus/<group>.jsonl files listed in the manifest of `dir`.
std::vector<ojson> read_corpus(const std::string& dir);
ojson read_manifest(const std::string& dir);

// ---- random cases (lossbench fuzz) ----

struct RandomCase {
  std::optional<ojson> line;  // a corpus line (docs/golden.md), or nothing when dropped
  std::string dropped;        // why there is no line
};

// One case of `loss` drawn from `seed`, with its expected values computed exactly as
// `generate` computes the corpus' (compute_expected). A group is drawn (smoke 1, reference 4,
// special 3, hard 1, error 1 in 10; a group without cases for the loss is drawn again), the
// loss's generator runs for that group (committed tier) with its random numbers seeded from
// `seed` instead of the recorded group seed, and one of the cases it makes is picked. The line
// has id "<loss>/fuzz/<seed as 16 hex digits>", the drawn group's name in "group", and the
// draw in its notes. A case the generator meant as a value case that the reference rejects (or
// the reverse), or that cannot be certified within the precision cap, is dropped (`dropped`
// says why). The same seed gives the same line on every platform. Throws Error when the
// loss's reference is not written yet. `generate` does not use this: the corpus is unchanged.
RandomCase random_case(const LossInfo& loss, std::uint64_t seed);

// ---- PyTorch's outputs (tools/torch_golden.py) ----

// Error of `got` against the exact value hi + lo, in ULPs of `dtype` (0 for matching NaNs and
// infinities, infinity for a class mismatch).
double ulp_error(double got, double hi, double lo, DType dtype);

struct Difference {
  std::string id;
  std::string what;  // "output", "grad.<name>", "error"
  double ulp = 0;    // worst element
  std::string detail;
};

struct ParityResult {
  std::size_t compared = 0;
  std::vector<Difference> unexplained;
  std::vector<Difference> explained;
  std::vector<std::string> stale_exceptions;  // entries that match nothing
};

// Every float64 case: the reference and PyTorch agree to `tolerance` ULPs, or the difference is
// listed in the exceptions file.
ParityResult parity(const std::string& dir, const std::string& torch_path,
                    const std::string& exceptions_path);

// golden/PYTORCH-ACCURACY.md: per loss and dtype, PyTorch's max and median error in ULPs.
std::string accuracy_markdown(const std::string& dir, const std::string& torch_path);

}  // namespace lossbench::golden
