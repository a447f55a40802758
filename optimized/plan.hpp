#pragma once
// Argument checks and the plan of an elementwise call, shared by the CPU backend (api.cpp) and
// the CUDA backend (cuda/): PyTorch 2.2's errors (LB_BAD_ARGUMENTS), parameters rounded as
// PyTorch rounds them, broadcasting, reductions, and which tensor receives which gradient.
//
// The call must describe host tensors (device LB_DEVICE_CPU): the checks read the values of the
// tensors named by checks_values() (binary_cross_entropy's input and target, gaussian_nll_loss's
// var); every other tensor is only described (shape, strides, dtype), its data is not touched.
// A device backend passes host copies of the former and its device pointers for the latter.
#include <cstdint>
#include <string>

#include "drivers/elementwise.hpp"
#include "lossbench/abi.h"

namespace lossbench::opt {

struct PlannedCall {
  Plan plan;
  const lb_tensor* inputs[kMaxInputs] = {};  // by formula input; nullptr when absent
  lb_tensor* grads[kMaxInputs] = {};         // by formula input; nullptr when not requested
};

// Is `loss` one of the elementwise losses?
bool plans_loss(const char* loss);
// Do the argument checks of `loss` read the values of its input `input`?
bool checks_values(const char* loss, const char* input);

// Checks the call and its output tensor and plans it. LB_OK, or a status and its message.
std::int32_t plan_forward(const lb_call& call, const lb_tensor& output, PlannedCall& pc,
                          std::string& error);
// The same for a backward call: grad_output (nullptr: ones) and the gradient tensors, which
// plan_backward assigns to pc.grads by name.
std::int32_t plan_backward(const lb_call& call, const lb_tensor* grad_output, lb_tensor* grads,
                           std::int32_t num_grads, PlannedCall& pc, std::string& error);

}  // namespace lossbench::opt
