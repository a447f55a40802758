#include "lossbench/catalog.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

using namespace lossbench;

TEST(Catalog, HasTheTwentyOneLossesOfPyTorch22) {
  ASSERT_EQ(catalog().size(), 21u);
  ASSERT_EQ(kLossCount, 21u);
  std::set<std::string_view> ids, modules;
  for (const auto& l : catalog()) {
    ids.insert(l.name);
    modules.insert(l.module);
    EXPECT_EQ(&info(l.id), &l);
    EXPECT_EQ(find_loss(l.name), &l);
    EXPECT_FALSE(l.reductions.empty());
    EXPECT_EQ(l.reductions.front(), "mean") << l.name;
    EXPECT_FALSE(l.inputs.empty());
    EXPECT_TRUE(l.inputs.front().differentiable)
        << l.name << ": its first input must have a gradient";
  }
  EXPECT_EQ(ids.size(), 21u);
  EXPECT_EQ(modules.size(), 21u);
  EXPECT_TRUE(find_loss("kl_div")->supports_reduction("batchmean"));
  EXPECT_FALSE(find_loss("mse_loss")->supports_reduction("batchmean"));
  EXPECT_EQ(find_loss("nope"), nullptr);
}

TEST(Catalog, DefaultsHaveTheirDeclaredTypes) {
  for (const auto& l : catalog())
    for (const auto& p : l.params) {
      const bool none = std::holds_alternative<std::monostate>(p.default_value);
      EXPECT_TRUE(!none || p.nullable) << l.name << "." << p.name;
      if (none) continue;
      switch (p.type) {
        case ParamType::Bool: EXPECT_TRUE(std::holds_alternative<bool>(p.default_value)); break;
        case ParamType::Int:
          EXPECT_TRUE(std::holds_alternative<std::int64_t>(p.default_value));
          break;
        case ParamType::Float: EXPECT_TRUE(std::holds_alternative<double>(p.default_value)); break;
        case ParamType::String:
          EXPECT_TRUE(std::holds_alternative<std::string>(p.default_value));
          break;
      }
    }
  EXPECT_EQ(
      std::get<std::int64_t>(find_loss("cross_entropy")->find_param("ignore_index")->default_value),
      -100);
  EXPECT_EQ(std::get<double>(find_loss("poisson_nll_loss")->find_param("eps")->default_value),
            1e-8);
}

// A loss of the catalog without tests fails the suite: each needs its own test file with tests.
TEST(Catalog, EveryLossHasReferenceTests) {
  for (const auto& l : catalog()) {
    const std::string path =
        std::string(LOSSBENCH_SOURCE_DIR) + "/tests/reference/" + std::string(l.name) + "_test.cpp";
    std::ifstream in(path);
    ASSERT_TRUE(in) << "missing " << path;
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    const std::regex test_re(R"(\bTEST\s*\()");
    const auto n = std::distance(std::sregex_iterator(text.begin(), text.end(), test_re),
                                 std::sregex_iterator());
    EXPECT_GE(n, 3) << l.name << " has only " << n << " tests in " << path;
  }
}
