// smooth_l1_loss: not written yet.
#include "common.hpp"

namespace lossbench::ref {

Evaluation evaluate_smooth_l1_loss(const Request&) {
  throw Error(ErrorKind::Value, "the reference of smooth_l1_loss is not written yet");
}

}  // namespace lossbench::ref
