#include "lossbench/case.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "lossbench/error.hpp"

using namespace lossbench;

namespace {
void expect_format_error(const std::string& json, const std::string& contains) {
  try {
    (void)parse_case(json);
    ADD_FAILURE() << "accepted: " << json;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Format) << e.what();
    EXPECT_NE(std::string(e.what()).find(contains), std::string::npos) << e.what();
  }
}
const std::string kX = R"({"dtype": "float32", "shape": [2], "data": ["0x1p+0", "0.1"]})";
}  // namespace

TEST(Case, ParsesTheDocumentedExample) {
  const Case c = parse_case(R"({"loss": "cross_entropy", "reduction": "mean",
   "params": {"ignore_index": 3, "label_smoothing": 0.25},
   "inputs": {"input":  {"dtype": "float32", "shape": [2, 3], "data": ["0x1p+0", "-0x1.8p+1", "0x0p+0", "nan", "inf", "-0x1p-3"]},
              "target": {"dtype": "int64", "shape": [2], "data": [0, 2]}}})");
  EXPECT_EQ(c.loss->name, "cross_entropy");
  EXPECT_EQ(c.param_int("ignore_index"), 3);
  EXPECT_EQ(c.param_float("label_smoothing"), 0.25);
  EXPECT_EQ(c.input("input").values.at(1), -3.0);
  EXPECT_TRUE(std::isnan(c.input("input").values.at(3)));
  EXPECT_EQ(c.input("target").ints.at(1), 2);
  EXPECT_FALSE(c.has("weight"));
}

TEST(Case, FillsDefaultsAndRoundsDecimalsToTheDType) {
  const Case c = parse_case(R"({"loss": "huber_loss", "inputs": {"input": )" + kX +
                            R"(, "target": )" + kX + "}}");
  EXPECT_EQ(c.reduction, "mean");
  EXPECT_EQ(c.param_float("delta"), 1.0);
  EXPECT_EQ(c.input("input").values.at(1), static_cast<double>(0.1f));
}

TEST(Case, RoundTripsThroughJson) {
  const Case c =
      parse_case(R"({"loss": "huber_loss", "params": {"delta": "0x1p-1"}, "inputs": {"input": )" +
                 kX + R"(, "target": )" + kX + "}}");
  const Case d = parse_case(case_to_json(c));
  EXPECT_EQ(d.param_float("delta"), 0.5);
  EXPECT_EQ(d.input("target").values, c.input("target").values);
}

TEST(Case, RejectsMalformedDocumentsWithALocation) {
  expect_format_error("{", "malformed JSON");
  expect_format_error("[]", "JSON object");
  expect_format_error(R"({"loss": "l2_loss", "inputs": {}})", "unknown loss 'l2_loss'");
  expect_format_error(R"({"loss": "mse_loss", "inputs": {"input": )" + kX + "}}",
                      "missing input 'target'");
  expect_format_error(R"({"loss": "mse_loss", "params": {"delta": 1}, "inputs": {}})",
                      "params.delta: unknown parameter for mse_loss");
  expect_format_error(R"({"loss": "huber_loss", "params": {"delta": true}, "inputs": {}})",
                      "params.delta");
  expect_format_error(
      R"({"loss": "mse_loss", "inputs": {"input": {"dtype": "float32", "shape": [3], "data": ["0x1p+0"]}, "target": )" +
          kX + "}}",
      "inputs.input.data: has 1 elements but shape [3] needs 3");
  expect_format_error(
      R"({"loss": "mse_loss", "inputs": {"input": {"dtype": "float8", "shape": [], "data": [1]}, "target": )" +
          kX + "}}",
      "inputs.input.dtype: unknown dtype 'float8'");
  expect_format_error(
      R"({"loss": "mse_loss", "inputs": {"input": {"dtype": "float32", "shape": [2], "data": ["1", "x"]}, "target": )" +
          kX + "}}",
      "inputs.input.data[1]");
  expect_format_error(
      R"({"loss": "nll_loss", "inputs": {"input": )" + kX + R"(, "target": )" + kX + "}}",
      "inputs.target.dtype: this input must be int64");
  expect_format_error(
      R"({"loss": "mse_loss", "inputs": {"input": {"dtype": "float32", "shape": [-1], "data": []}, "target": )" +
          kX + "}}",
      "negative size");
  expect_format_error(R"({"loss": "mse_loss", "extra": 1, "inputs": {}})", "extra: unknown key");
}

TEST(Case, RejectsAnInvalidReductionAsPyTorchDoes) {
  try {
    (void)parse_case(R"({"loss": "mse_loss", "reduction": "batchmean", "inputs": {"input": )" + kX +
                     R"(, "target": )" + kX + "}}");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Value);
    EXPECT_STREQ(e.what(), "batchmean is not a valid value for reduction");
  }
}
