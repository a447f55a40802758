#include "testing.hpp"

// The reference of margin_ranking_loss is not written yet: this test fails until it is.
TEST(margin_ranking_loss, ReferenceIsWritten) { FAIL() << "no reference tests for margin_ranking_loss yet"; }
