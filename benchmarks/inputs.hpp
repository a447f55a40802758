#pragma once
// Deterministic, valid inputs for the benchmarks: one builder per loss of the catalog (which
// tensors, their shapes, the valid value range of each), the byte model (what a single pass must
// move: the speed of light's numerator) and the transcendental floor (benchmarks/README.md).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lossbench/abi.h"
#include "transc.hpp"

namespace lossbench::bench {

std::size_t dtype_size(std::int32_t dtype);
const char* dtype_label(std::int32_t dtype);

// A contiguous tensor of up to 3 dimensions with 64-byte aligned storage.
struct Buffer {
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  std::unique_ptr<void, Free> data;
  std::int32_t dtype = LB_FLOAT32;
  std::int64_t n = 0;  // elements
  std::int32_t ndim = 1;
  std::int64_t shape[3] = {0, 1, 1};
  std::int64_t stride[3] = {1, 1, 1};
  std::string name;

  Buffer(std::string name_, std::int32_t dtype_, std::vector<std::int64_t> dims);
  std::size_t bytes() const { return static_cast<std::size_t>(n) * dtype_size(dtype); }
  lb_tensor tensor() const;
  double get(std::int64_t i) const;
  void set(std::int64_t i, double v);
};

// One benchmark instance of a loss: its inputs in catalog order and what the speed of light
// needs to know about them.
struct Problem {
  std::vector<Buffer> inputs;
  std::size_t grad_index = 0;            // the input whose gradient fwdbwd computes
  std::vector<std::int64_t> none_shape;  // the output's shape under reduction "none"
  std::int64_t elements = 0;             // elements of the main floating tensor (items/s)
  std::size_t fwd_bytes = 0;             // byte model, forward (inputs that must be read)
  std::size_t grad_bytes = 0;            // extra for fwdbwd (the gradient written)
  Transc floor_fwd;                      // transcendental floor: evaluations, whole call
  Transc floor_bwd;                      // extra for fwdbwd
  std::string shape;                     // e.g. "N=16 C=1024", stamped on the result
};

// True when `loss` has a builder (all 21 losses of the catalog).
bool has_builder(std::string_view loss);

// The instance of `loss` whose main floating tensor has about `elements` elements (the shape
// rules are in benchmarks/README.md; small counts give small shapes, for the reference and the
// correctness check). `seed` selects the random stream. Throws std::invalid_argument for a loss
// without a builder.
Problem make_problem(std::string_view loss, std::int32_t dtype, std::int64_t elements,
                     std::uint64_t seed);

}  // namespace lossbench::bench
