#pragma once
// Every formula, and the list of losses this backend implements (one line each).
#include "binary_cross_entropy.hpp"
#include "binary_cross_entropy_with_logits.hpp"
#include "cross_entropy.hpp"
#include "gaussian_nll_loss.hpp"
#include "hinge_embedding_loss.hpp"
#include "huber_loss.hpp"
#include "kl_div.hpp"
#include "l1_loss.hpp"
#include "margin_ranking_loss.hpp"
#include "mse_loss.hpp"
#include "multi_margin_loss.hpp"
#include "multilabel_margin_loss.hpp"
#include "multilabel_soft_margin_loss.hpp"
#include "nll_loss.hpp"
#include "poisson_nll_loss.hpp"
#include "smooth_l1_loss.hpp"
#include "soft_margin_loss.hpp"

// LOSSBENCH_OPT_LOSS(id, formula struct)
#define LOSSBENCH_OPT_LOSSES(X)                                     \
  X(l1_loss, L1Loss)                                                \
  X(mse_loss, MseLoss)                                              \
  X(huber_loss, HuberLoss)                                          \
  X(smooth_l1_loss, SmoothL1Loss)                                   \
  X(soft_margin_loss, SoftMarginLoss)                               \
  X(binary_cross_entropy, BinaryCrossEntropy)                       \
  X(binary_cross_entropy_with_logits, BinaryCrossEntropyWithLogits) \
  X(margin_ranking_loss, MarginRankingLoss)                         \
  X(hinge_embedding_loss, HingeEmbeddingLoss)                       \
  X(poisson_nll_loss, PoissonNllLoss)                               \
  X(gaussian_nll_loss, GaussianNllLoss)                             \
  X(kl_div, KlDiv)

// The elementwise losses whose float64 formulas run in double-double (api.cpp, isa/exact64*.cpp;
// on AVX-512 the first four have formulas of their own, isa/f64_dd.hpp):
// their formula cancels inside (poisson's exp(x) - y x, kl_div's y log y - y x, gaussian's
// log v + d^2 / v), or does for targets outside [0, 1] (the two binary cross-entropies' weighted
// sums, e.g. (1 - y) sp(x) + y sp(-x) with y > 1), and so do their gradients ((1 - y)
// sigmoid(x) - y sigmoid(-x) near its zero).
#define LOSSBENCH_OPT_CANCELLING_LOSSES(X)                          \
  X(binary_cross_entropy, BinaryCrossEntropy)                       \
  X(binary_cross_entropy_with_logits, BinaryCrossEntropyWithLogits) \
  X(poisson_nll_loss, PoissonNllLoss)                               \
  X(gaussian_nll_loss, GaussianNllLoss)                             \
  X(kl_div, KlDiv)

// The classification losses (drivers/classification.cpp): rows of classes, not elements.
#define LOSSBENCH_OPT_CLASSIFICATION_LOSSES(X) \
  X(cross_entropy, CrossEntropy)               \
  X(nll_loss, NllLoss)                         \
  X(multi_margin_loss, MultiMarginLoss)
