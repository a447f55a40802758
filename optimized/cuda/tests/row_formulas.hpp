#pragma once
// The row losses' formula pieces (cross_entropy, multi_margin_loss, ctc_loss, the multilabel,
// cosine and triplet losses) on three inputs: one function compiled by nvcc
// (formulas_nvcc.cu) and by the host compiler (cuda_test.cpp), each in its own inline
// namespace (LOSSBENCH_FORMULA_NS), for the bit-for-bit comparison of the two builds.
#include "formulas/all.hpp"
#include "formulas/cosine_embedding_loss.hpp"
#include "formulas/ctc_loss.hpp"
#include "formulas/multilabel_margin_loss.hpp"
#include "formulas/multilabel_soft_margin_loss.hpp"
#include "formulas/triplet_margin_loss.hpp"
#include "formulas/triplet_margin_with_distance_loss.hpp"

namespace lossbench::opt::formulas {
inline namespace LOSSBENCH_FORMULA_NS {

inline constexpr int kRowFormulaOutputs = 24;

inline void row_formulas(const double* in, double* out) {
  const double a = in[0], b = in[1], c = in[2];
  int k = 0;
  double hi, lo;
  CrossEntropy::diff(a, b, hi, lo);
  out[k++] = hi;
  out[k++] = lo;
  out[k++] = CrossEntropy::refine_exp(std::exp(hi), lo);
  out[k++] = CrossEntropy::log_prob(hi, lo, c);
  out[k++] = CrossEntropy::grad(a, b, c, 0.75, 1.5);
  out[k++] = CrossEntropy::smoothed_target(a, Params{0.875, 0.0125, true, false, 0.0, 0.0});
  Params p2;
  p2.f0 = true;
  out[k++] = MultiMarginLoss::z(a, b, c);
  out[k++] = MultiMarginLoss::term(a, b, p2);
  out[k++] = MultiMarginLoss::grad(a, b, p2);
  out[k++] = NllLoss::term(a, b);
  out[k++] = CtcLoss::log_add3(a, b, c);
  out[k++] = CtcLoss::log_add2(a, b);
  out[k++] = CtcLoss::grad(a, b, c, 0.75);
  out[k++] = MultilabelMarginLoss::z(a, b);
  out[k++] = MultilabelSoftMarginLoss::term(a, b);
  out[k++] = MultilabelSoftMarginLoss::grad_input(a, b, c);
  Params margin;
  margin.s0 = 0.25;
  out[k++] = CosineEmbeddingLoss::forward(a, b, c, 1.0, margin);
  out[k++] = CosineEmbeddingLoss::forward(a, b, c, -1.0, margin);
  out[k++] = CosineEmbeddingLoss::dx(a, b, c, 0.5, 0.25);
  out[k++] = CosineDistance::forward(a, b, c, 1e-16, true);
  out[k++] = CosineDistance::dx(a, b, 0.3, c, 0.7, 1e-8, 0.75, true, kNaN);
  const PNorm p3(3.0);
  out[k++] = p3.backward(a, b, c, 1.0);
  out[k++] = p3.finish(a);
  out[k++] = TripletMarginLoss::forward(a, b, c, true, 1.0);
}

}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace lossbench::opt::formulas
