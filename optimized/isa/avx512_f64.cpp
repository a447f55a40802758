// The AVX-512 path for the float64 losses with exp and log that add terms of one sign
// (soft_margin_loss; the row exps of cross_entropy: api.cpp), for those with a double-double
// formula of their own (binary_cross_entropy, kl_div: isa/f64_dd.hpp) and for ctc_loss's
// double-double recursion (isa/ctc_dd.hpp), cross_entropy's float64 rows (isa/ce_dd.hpp) and
// multilabel_soft_margin_loss's float64 rows (its dense row kernels with this table's math). The
// same code as isa/avx512.cpp, compiled with LOSSBENCH_F64_MATH: exp, log, log1p and softplus's
// tail to about half an ULP of double, and a true division (isa/simd.hpp).
#include "ce_dd.hpp"
#include "ctc_dd.hpp"
#include "f64_dd.hpp"

#if HWY_TARGET != HWY_AVX3 || !defined(LOSSBENCH_F64_MATH)
#error "isa/avx512_f64.cpp must be compiled with the AVX-512 flags and LOSSBENCH_F64_MATH"
#endif

namespace lossbench::opt {

const KernelTable& avx512_f64_kernels() {
  static const KernelTable table = [] {
    KernelTable t = kernels::make_table<simd::VD>("avx512");
    t.ctc_paths_f64 = simd::ctcdd::paths;
    t.ctc_grad_f64 = simd::ctcdd::grad;
    t.ce_row_f64 = simd::cedd::row;
    t.ce_grad_row_f64 = simd::cedd::grad_row;
    t.mlsm_forward_f64 =
        kernels::dense_forward<simd::VD, formulas::MultilabelSoftMarginRow, double>;
    t.mlsm_backward_f64 =
        kernels::dense_backward<simd::VD, formulas::MultilabelSoftMarginRow, double>;
    t.mlsm_fused_f64 =
        kernels::dense_forward<simd::VD, formulas::MultilabelSoftMarginRow, double, true>;
    return t;
  }();
  return table;
}

}  // namespace lossbench::opt
