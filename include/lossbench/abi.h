/* lossbench implementation ABI, version 1 (see docs/scorer.md).
 *
 * An implementation of the catalog's losses (a CPU backend, a CUDA backend, a third-party
 * library) is a shared library that exports one C function:
 *
 *     const lb_impl* lossbench_impl_v1(void);
 *
 * It returns a table that lives as long as the library is loaded. The scorer (`lossbench check
 * --impl path/to/libfoo.so`) loads it with dlopen, in a child process, and calls it.
 *
 * Conventions
 * - Names are the catalog's: loss ids as in torch.nn.functional ("cross_entropy"), input names
 *   as PyTorch's functional arguments ("input", "target", "weight"), parameter names as PyTorch's
 *   keywords ("ignore_index", "label_smoothing"), reductions "none" / "mean" / "sum" /
 *   "batchmean".
 * - Optional inputs that are absent (weight=None) are not passed at all.
 * - Parameters are passed by name. The caller passes the parameters whose value differs from
 *   PyTorch 2.2's default (the catalog's); an absent parameter has its default value. An
 *   implementation that meets a parameter name it does not know returns LB_UNSUPPORTED, so a
 *   parameter added to the catalog later breaks no plugin.
 * - The caller allocates the output and gradient tensors, with the dtype and shape the
 *   reference gives (reduced outputs are 0-d; gradients have their input's shape), contiguous.
 *   The implementation writes every element. Input tensors may have any strides.
 * - Element storage: float64 / float32 as IEEE binary64 / binary32, float16 as IEEE binary16
 *   bits (uint16_t), bfloat16 as the upper 16 bits of a binary32 (uint16_t), int64 as int64_t.
 * - Status codes: LB_OK; LB_UNSUPPORTED (this loss/dtype/parameter/device is not implemented:
 *   the case is skipped, not failed); LB_BAD_ARGUMENTS (the inputs are ones PyTorch 2.2 rejects:
 *   shapes that do not match, an index out of range, an unknown reduction...); LB_INTERNAL_ERROR.
 *   On any status but LB_OK the implementation may write a NUL-terminated message into the
 *   caller's `error` buffer (at most error_size bytes, including the NUL).
 * - Functions may be called from one thread at a time; no call keeps a pointer it was given.
 */
#ifndef LOSSBENCH_ABI_H
#define LOSSBENCH_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LB_ABI_VERSION 1u
#define LB_ENTRY_POINT_V1 "lossbench_impl_v1"

#if defined(_WIN32)
#define LB_EXPORT __declspec(dllexport)
#else
#define LB_EXPORT __attribute__((visibility("default")))
#endif

/* Status codes (int32_t). */
enum { LB_OK = 0, LB_UNSUPPORTED = 1, LB_BAD_ARGUMENTS = 2, LB_INTERNAL_ERROR = 3 };

/* Element types (int32_t). */
enum { LB_FLOAT64 = 0, LB_FLOAT32 = 1, LB_FLOAT16 = 2, LB_BFLOAT16 = 3, LB_INT64 = 4 };

/* Device types. */
enum { LB_DEVICE_CPU = 0, LB_DEVICE_CUDA = 1 };

typedef struct lb_device {
  int32_t type;  /* LB_DEVICE_* */
  int32_t index; /* device ordinal; 0 for the CPU */
} lb_device;

typedef struct lb_tensor {
  const char* name;       /* input name ("input", "target"...), gradient name, or "output" */
  void* data;             /* first element, on `device` */
  int32_t dtype;          /* LB_FLOAT64 ... LB_INT64 */
  int32_t ndim;           /* 0 for a 0-d tensor (one element) */
  const int64_t* shape;   /* ndim sizes (may be NULL when ndim == 0) */
  const int64_t* strides; /* ndim strides, in elements */
  lb_device device;
} lb_tensor;

/* Parameter value types (int32_t). */
enum {
  LB_PARAM_NONE = 0, /* Python's None */
  LB_PARAM_BOOL = 1,
  LB_PARAM_INT = 2,
  LB_PARAM_FLOAT = 3,
  LB_PARAM_STRING = 4
};

typedef struct lb_param {
  const char* name; /* PyTorch's keyword */
  int32_t type;     /* LB_PARAM_*: which one of the fields below holds the value */
  int32_t b;        /* LB_PARAM_BOOL: 0 or 1 */
  int64_t i;        /* LB_PARAM_INT */
  double f;         /* LB_PARAM_FLOAT (exactly the case's value) */
  const char* s;    /* LB_PARAM_STRING */
} lb_param;

/* One loss evaluation. */
typedef struct lb_call {
  uint32_t struct_size; /* sizeof(lb_call) of the caller: fields may be appended later */
  const char* loss;
  const char* reduction;
  const lb_tensor* inputs; /* the inputs given, by name, in catalog order */
  int32_t num_inputs;
  const lb_param* params;
  int32_t num_params;
  lb_device device; /* where every tensor of the call lives */
} lb_call;

typedef int32_t (*lb_forward_backward_fn)(const lb_call* call, lb_tensor* output,
                                          const lb_tensor* grad_output, lb_tensor* grads,
                                          int32_t num_grads, char* error, size_t error_size);

typedef struct lb_impl {
  uint32_t abi_version; /* LB_ABI_VERSION: the caller refuses another major version */
  uint32_t struct_size; /* sizeof(lb_impl) of the implementation: fields may be appended */
  const char* name;     /* short name, e.g. "cpu-avx2" */
  const char* version;  /* free-form */

  /* Nonzero when forward (and backward, if given) can handle this loss, dtype (of the floating
   * inputs; LB_INT64 when there is none), device and reduction. Required. Returning nonzero and
   * then LB_UNSUPPORTED from forward is allowed. */
  int32_t (*supports)(const char* loss, int32_t dtype, lb_device device, const char* reduction);

  /* Computes the loss into `output`. Required. */
  int32_t (*forward)(const lb_call* call, lb_tensor* output, char* error, size_t error_size);

  /* Computes the gradients of the differentiable inputs named by grads[k].name, given the
   * upstream gradient (shape of the output). Optional (NULL: forward only). */
  int32_t (*backward)(const lb_call* call, const lb_tensor* grad_output, lb_tensor* grads,
                      int32_t num_grads, char* error, size_t error_size);

  /* Waits for the work of forward/backward on `device` to finish. Optional (NULL: calls are
   * synchronous). */
  int32_t (*synchronize)(lb_device device, char* error, size_t error_size);

  /* Where the implementation wants its tensors. When it is not the CPU, device_alloc,
   * device_free and copy must be given: the caller allocates the call's tensors there and copies
   * the data in and out with them. */
  lb_device native_device;
  void* (*device_alloc)(lb_device device, size_t bytes);
  void (*device_free)(lb_device device, void* pointer);
  /* Copies bytes between host and device memory; returns an LB_* status. */
  int32_t (*copy)(void* dst, lb_device dst_device, const void* src, lb_device src_device,
                  size_t bytes);

  /* Appended field (read only when struct_size covers it). Forward and backward in one call:
   * the same results as forward(call, output) followed by backward(call, grad_output, grads),
   * so an implementation can read the inputs once (a fused pass). Optional (NULL, or a shorter
   * table: the caller makes the two calls). */
  lb_forward_backward_fn forward_backward;
} lb_impl;

/* The forward_backward entry of `impl`, or NULL when it has none. */
static inline lb_forward_backward_fn lb_forward_backward_of(const lb_impl* impl) {
  return impl->struct_size >= offsetof(lb_impl, forward_backward) + sizeof impl->forward_backward
             ? impl->forward_backward
             : NULL;
}

typedef const lb_impl* (*lb_entry_point_v1)(void);

#ifdef __cplusplus
}
#endif

#endif /* LOSSBENCH_ABI_H */
