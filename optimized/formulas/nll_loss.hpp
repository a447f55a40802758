#pragma once
// nll_loss: the per-position formula (docs/losses/nll_loss.md). The classification driver
// (drivers/classification.cpp) picks x = input[i, t_i] and w = weight[t_i] (1 without weight);
// ignored positions give +0 and no weight.
#include "common.hpp"

namespace lossbench::opt::formulas {
inline namespace LOSSBENCH_FORMULA_NS {

struct NllLoss {
  // -(w_t x_t), as PyTorch (a -0 term stays -0; sums start from +0).
  template <class V>
  LOSSBENCH_HD static V term(V x, V w) {
    return -(x * w);
  }
  // d/dx[i, t_i] = w_t (-s_i), s_i the upstream of the position (g_i, g, or g / W).
  template <class V>
  LOSSBENCH_HD static V grad(V w, V s) {
    return w * -s;
  }
};

}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace lossbench::opt::formulas
