// binary_cross_entropy: not written yet.
#include "common.hpp"

namespace lossbench::ref {

Evaluation evaluate_binary_cross_entropy(const Request&) {
  throw Error(ErrorKind::Value, "the reference of binary_cross_entropy is not written yet");
}

}  // namespace lossbench::ref
