#include "testing.hpp"

// The reference of multi_margin_loss is not written yet: this test fails until it is.
TEST(multi_margin_loss, ReferenceIsWritten) { FAIL() << "no reference tests for multi_margin_loss yet"; }
