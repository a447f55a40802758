#pragma once
// What the per-loss generators (golden/generators/) build on: the generation context of one
// loss in one group, a builder of case documents, and value and shape helpers.
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "lossbench/case.hpp"
#include "lossbench/catalog.hpp"
#include "lossbench/dtype.hpp"
#include "rng.hpp"

namespace lossbench::golden {

using ojson = nlohmann::ordered_json;

enum class Group { smoke, reference, special, hard, error };
inline constexpr Group kGroups[] = {Group::smoke, Group::reference, Group::special, Group::hard,
                                    Group::error};
std::string_view to_string(Group g);
bool parse_group(std::string_view name, Group& out);

enum class Tier { committed, large };

// One case document being built, plus what the corpus records beside it.
class CaseBuilder {
 public:
  CaseBuilder(const LossInfo& loss, DType dtype, std::string_view reduction);

  DType dtype() const { return dtype_; }
  // A parameter by its PyTorch name (must be in the catalog).
  CaseBuilder& param(std::string_view name, ojson value);
  // A floating input: values are rounded to the case's dtype (or `as`) here.
  CaseBuilder& floats(std::string_view name, const Shape& shape, const std::vector<double>& v);
  CaseBuilder& floats_as(std::string_view name, DType as, const Shape& shape,
                         const std::vector<double>& v);
  CaseBuilder& ints(std::string_view name, const Shape& shape, const std::vector<std::int64_t>& v);
  CaseBuilder& grad_output(const Shape& shape, const std::vector<double>& v);
  CaseBuilder& note(std::string text);
  // The case must be rejected with this error class (lossbench's ErrorKind name).
  CaseBuilder& expect_error(std::string error_class);

  const ojson& doc() const { return doc_; }
  const std::vector<std::string>& notes() const { return notes_; }
  const std::string& expected_error() const { return expected_error_; }

 private:
  DType dtype_;
  ojson doc_;
  std::vector<std::string> notes_;
  std::string expected_error_;
};

// The generation of one loss in one group.
class Gen {
 public:
  Gen(const LossInfo& loss, Group group, Tier tier, std::uint64_t seed);

  const LossInfo& loss;
  const Group group;
  const Tier tier;
  Rng rng;

  CaseBuilder start(DType dtype, std::string_view reduction) const {
    return CaseBuilder(loss, dtype, reduction);
  }
  void emit(CaseBuilder b) { cases_.push_back(std::move(b)); }
  std::vector<CaseBuilder>& cases() { return cases_; }

  // The dtypes this group covers: float64 and float32 for smoke, all four otherwise.
  std::vector<DType> dtypes() const;
  // The reductions of the catalog entry (PyTorch's default first).
  std::vector<std::string> reductions() const;
  bool large() const { return tier == Tier::large; }

 private:
  std::vector<CaseBuilder> cases_;
};

// ---- values (all deterministic; see rng.hpp) ----
using Values = std::vector<double>;

Values normal(Rng& rng, std::size_t n, double scale = 1.0, double shift = 0.0);
Values uniform(Rng& rng, std::size_t n, double lo, double hi);
Values signs(Rng& rng, std::size_t n);
// sign * 2^e * (1 + u) with e uniform over a wide, dtype-dependent range of finite values.
Values wide(Rng& rng, std::size_t n, DType dtype);
// Values from a small grid (exact ties and repeated values).
Values grid(Rng& rng, std::size_t n, const std::vector<double>& choices);
// NaN, +-inf, +-0, the smallest subnormal and the largest finite value of the dtype.
std::vector<double> special_values(DType dtype);
double smallest_subnormal(DType dtype);
double smallest_normal(DType dtype);
double largest_finite(DType dtype);
// Replaces about `fraction` of the entries by draws from `pool` (at least one when n > 0).
void sprinkle(Rng& rng, Values& v, const std::vector<double>& pool, double fraction);
// Rounds every value to the dtype.
Values rounded(Values v, DType dtype);

// log_softmax / softmax along dimension `dim` of `shape`, computed with MPFR at 128 bits and
// rounded once to double (correctly rounded functions: the same on every platform).
Values log_softmax(const Values& x, const Shape& shape, std::size_t dim);
Values softmax(const Values& x, const Shape& shape, std::size_t dim);

std::size_t count(const Shape& s);
// Natural logarithm correctly rounded (MPFR): the same on every platform, unlike std::log.
double log_cr(double x);

// ---- the per-loss generators: golden/generators/<family>.cpp ----
#define LOSSBENCH_LOSS(id, module) void generate_##id(Gen& g);
#include "lossbench/losses.def"
#undef LOSSBENCH_LOSS

// Calls the generator of g.loss.
void generate_loss(Gen& g);

}  // namespace lossbench::golden
