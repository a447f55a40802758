#include "testing.hpp"

// The reference of multilabel_soft_margin_loss is not written yet: this test fails until it is.
TEST(multilabel_soft_margin_loss, ReferenceIsWritten) { FAIL() << "no reference tests for multilabel_soft_margin_loss yet"; }
