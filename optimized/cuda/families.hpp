#pragma once
// The CUDA drivers of the row losses (classification.cu, ctc.cu, multilabel.cu): each takes the
// CPU driver's checked call (built by the CPU code on a host description of the call, api.cpp)
// and the device pointers of its tensors. Output, gradient and grad_output tensors describe
// device memory. Synchronous; each returns "" or the CUDA error's text. Included by nvcc and by
// the host compiler, so it names no CUDA type.
#include <cstdint>
#include <string>

#include "drivers/classification.hpp"
#include "drivers/ctc.hpp"
#include "drivers/multilabel.hpp"
#include "drivers/pairwise.hpp"

namespace lossbench::opt::cuda {

// Device pointers of a classification call's input, target and weight (nullptr when absent).
struct ClassificationData {
  const void* input = nullptr;
  const void* target = nullptr;
  const void* weight = nullptr;
};

// W: classification_total_weight(p) (index modes, reduction 'mean').
std::string classification_forward(const ClassificationPlan& p, const ClassificationData& d,
                                   double W, const lb_tensor& output);
// grad_output nullptr: ones; gx, gt, gw as match_classification_grads gives them (or nullptr).
std::string classification_backward(const ClassificationPlan& p, const ClassificationData& d,
                                    double W, const lb_tensor* grad_output, const lb_tensor* gx,
                                    const lb_tensor* gt, const lb_tensor* gw);

std::string ctc_forward(const ctc::Call& c, const void* log_probs, const lb_tensor& output);
std::string ctc_backward(const ctc::Call& c, const void* log_probs, const lb_tensor* grad_output,
                         const lb_tensor& grad);

// multilabel_margin_loss marks the listed classes of a sample in shared memory (one byte each):
// more classes than this are refused (api.cpp: LB_UNSUPPORTED).
inline constexpr std::int64_t kMultilabelMaxClasses = 40000;
std::string multilabel_margin_forward(const multilabel::Margin& m, const void* input,
                                      const lb_tensor& output);
std::string multilabel_margin_backward(const multilabel::Margin& m, const void* input,
                                       const lb_tensor* grad_output, const lb_tensor& grad);

// Device pointers of input, target and weight (nullptr when absent).
struct SoftData {
  const void* input = nullptr;
  const void* target = nullptr;
  const void* weight = nullptr;
};
std::string multilabel_soft_forward(const multilabel::Soft& s, const SoftData& d,
                                    const lb_tensor& output);
std::string multilabel_soft_backward(const multilabel::Soft& s, const SoftData& d,
                                     const lb_tensor* grad_output, const lb_tensor* gx,
                                     const lb_tensor* gy, const lb_tensor* gw);

// A pairwise call's inputs: host[k] (the checked call's tensor) lives at device[k].
struct PairwiseData {
  static constexpr int kMax = 8;
  const lb_tensor* host[kMax] = {};
  const void* device[kMax] = {};
};
std::string pairwise_forward(const pairwise::Call& c, const PairwiseData& d,
                             const lb_tensor& output);
// grads[j]: the gradient of input j (input1, input2 / anchor, positive, negative) or nullptr.
std::string pairwise_backward(const pairwise::Call& c, const PairwiseData& d,
                              const lb_tensor* grad_output, lb_tensor* const* grads);

}  // namespace lossbench::opt::cuda
