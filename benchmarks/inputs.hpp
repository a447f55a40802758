#pragma once
// Deterministic, valid inputs for the benchmarks, one small builder per loss of the elementwise
// shape family (the catalog drives which losses exist; this table says what values are valid
// for each input). Losses of the other shape families have no builder yet: they are not
// registered (benchmarks/README.md, "What is not done").
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lossbench/abi.h"

namespace lossbench::bench {

// How the values of one input are drawn.
struct ValueRange {
  enum Kind { Uniform, Sign } kind = Uniform;  // Sign: +1 / -1
  double lo = -2, hi = 2;
};

struct InputBuilder {
  std::string_view name;  // ABI input name
  ValueRange range;
};

// nullptr when the loss has no builder (not benchmarked).
const std::vector<InputBuilder>* builders_for(std::string_view loss);

// Transcendental floor of the loss, in ns per element on one core (performance anchors §1.3,
// §2.1: exp 0.42, log 0.65, log1p 0.80), forward and the extra for the backward.
struct Floor {
  double forward_ns = 0;
  double backward_ns = 0;
};
Floor transcendental_floor(std::string_view loss);

std::size_t dtype_size(std::int32_t dtype);
const char* dtype_label(std::int32_t dtype);

// A contiguous 1-d tensor with 64-byte aligned storage.
struct Buffer {
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  std::unique_ptr<void, Free> data;
  std::int32_t dtype = LB_FLOAT32;
  std::int64_t n = 0;
  std::int64_t shape[1] = {0};
  std::int64_t stride[1] = {1};
  std::string name;

  Buffer(std::string name_, std::int32_t dtype_, std::int64_t n_);
  std::size_t bytes() const { return static_cast<std::size_t>(n) * dtype_size(dtype); }
  lb_tensor tensor() const;
  double get(std::int64_t i) const;
};

// Fills buffers for every required input of `loss` with n elements; `seed` selects the stream.
std::vector<Buffer> make_inputs(std::string_view loss, std::int32_t dtype, std::int64_t n,
                                std::uint64_t seed);

}  // namespace lossbench::bench
