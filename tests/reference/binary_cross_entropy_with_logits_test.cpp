#include "testing.hpp"

// The reference of binary_cross_entropy_with_logits is not written yet: this test fails until it is.
TEST(binary_cross_entropy_with_logits, ReferenceIsWritten) { FAIL() << "no reference tests for binary_cross_entropy_with_logits yet"; }
