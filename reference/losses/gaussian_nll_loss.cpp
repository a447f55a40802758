// gaussian_nll_loss: not written yet.
#include "common.hpp"

namespace lossbench::ref {

Evaluation evaluate_gaussian_nll_loss(const Request&) {
  throw Error(ErrorKind::Value, "the reference of gaussian_nll_loss is not written yet");
}

}  // namespace lossbench::ref
