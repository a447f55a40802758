#include "lossbench/dtype.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "lossbench/error.hpp"

using namespace lossbench;

TEST(DType, NamesRoundTrip) {
  for (DType d : {DType::float64, DType::float32, DType::float16, DType::bfloat16, DType::int64})
    EXPECT_EQ(parse_dtype(to_string(d)), d);
  EXPECT_FALSE(parse_dtype("float8").has_value());
}

TEST(DType, RoundsToFloat32LikeTheHardware) {
  for (double v : {0.1, 1.0 / 3, 1e-40, 3e38, 1e-46, -2.5e-45, 0x1.fffffefffffffp+127}) {
    const float f = static_cast<float>(v);
    EXPECT_EQ(round_to(v, DType::float32), static_cast<double>(f)) << v;
  }
  EXPECT_TRUE(
      std::isinf(round_to(0x1.ffffffp+127, DType::float32)));  // half ulp above max: tie to inf
}

TEST(DType, Float16Boundaries) {
  EXPECT_EQ(round_to(65504.0, DType::float16), 65504.0);
  EXPECT_EQ(round_to(65519.99, DType::float16), 65504.0);
  EXPECT_TRUE(std::isinf(round_to(65520.0, DType::float16)));  // tie with 2^16 goes to inf
  EXPECT_EQ(round_to(0x1p-24, DType::float16), 0x1p-24);       // smallest subnormal
  EXPECT_EQ(round_to(0x1p-25, DType::float16), 0.0);           // tie to even: 0
  EXPECT_EQ(round_to(0x1.8p-25, DType::float16), 0x1p-24);
  EXPECT_EQ(round_to(0x1.8p-24, DType::float16), 0x1p-23);  // 1.5 * min_sub ties to 2 * min_sub
  EXPECT_EQ(round_to(1.0 + 0x1p-11, DType::float16), 1.0);  // tie to even
  EXPECT_EQ(round_to(1.0 + 0x1.8p-11, DType::float16), 1.0 + 0x1p-10);
  EXPECT_TRUE(std::signbit(round_to(-0x1p-30, DType::float16)));
}

TEST(DType, BFloat16Boundaries) {
  EXPECT_EQ(round_to(1.0 + 0x1p-8, DType::bfloat16), 1.0);
  EXPECT_EQ(round_to(1.0 + 0x1.8p-8, DType::bfloat16), 1.0 + 0x1p-7);
  EXPECT_EQ(round_to(0x1p-133, DType::bfloat16), 0x1p-133);  // smallest subnormal
  EXPECT_EQ(round_to(3.0e38, DType::bfloat16), 0x1.c4p+127);
}

TEST(DType, ParsesHexExactlyAndRejectsInexactHex) {
  EXPECT_EQ(parse_float_text("0x1.8p+1", DType::float32), 3.0);
  EXPECT_EQ(parse_float_text("-0x0p+0", DType::float16), 0.0);
  EXPECT_TRUE(std::signbit(parse_float_text("-0x0p+0", DType::float16)));
  EXPECT_THROW(parse_float_text("0x1.000001p+0", DType::float32), Error);
  EXPECT_THROW(parse_float_text("0x1.0000000000000000001p+0", DType::float64), Error);
  EXPECT_THROW(parse_float_text("0x1p+128", DType::float32), Error);
}

TEST(DType, RoundsDecimalsOnceToTheDType) {
  EXPECT_EQ(parse_float_text("0.1", DType::float32), static_cast<double>(0.1f));
  EXPECT_EQ(parse_float_text("0.1", DType::float64), 0.1);
  // 1 + 2^-24 + 2^-60 written in decimal: rounding through double first would give the tie
  // 1 + 2^-24 and then 1; a single rounding gives 1 + 2^-23.
  EXPECT_EQ(
      parse_float_text("1.0000000596046447753906250867361737988403547205962240695953369140625",
                       DType::float32),
      1.0 + 0x1p-23);
  EXPECT_TRUE(std::isnan(parse_float_text("nan", DType::bfloat16)));
  EXPECT_EQ(parse_float_text("-inf", DType::float16), -std::numeric_limits<double>::infinity());
  EXPECT_THROW(parse_float_text("1.5x", DType::float64), Error);
  EXPECT_THROW(parse_float_text("", DType::float64), Error);
}

TEST(DType, HexStrings) {
  EXPECT_EQ(hex_string(3.0), "0x1.8p+1");
  EXPECT_EQ(hex_string(-0.0), "-0x0p+0");
  EXPECT_EQ(hex_string(std::numeric_limits<double>::quiet_NaN()), "nan");
  EXPECT_EQ(hex_string(-std::numeric_limits<double>::infinity()), "-inf");
}
