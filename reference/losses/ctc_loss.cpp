// ctc_loss: not written yet.
#include "common.hpp"

namespace lossbench::ref {

Evaluation evaluate_ctc_loss(const Request&) {
  throw Error(ErrorKind::Value, "the reference of ctc_loss is not written yet");
}

}  // namespace lossbench::ref
