#include "testing.hpp"

// The reference of soft_margin_loss is not written yet: this test fails until it is.
TEST(soft_margin_loss, ReferenceIsWritten) { FAIL() << "no reference tests for soft_margin_loss yet"; }
