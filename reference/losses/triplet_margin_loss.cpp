// triplet_margin_loss: not written yet.
#include "common.hpp"

namespace lossbench::ref {

Evaluation evaluate_triplet_margin_loss(const Request&) {
  throw Error(ErrorKind::Value, "the reference of triplet_margin_loss is not written yet");
}

}  // namespace lossbench::ref
