// binary_cross_entropy_with_logits: not written yet.
#include "common.hpp"

namespace lossbench::ref {

Evaluation evaluate_binary_cross_entropy_with_logits(const Request&) {
  throw Error(ErrorKind::Value, "the reference of binary_cross_entropy_with_logits is not written yet");
}

}  // namespace lossbench::ref
