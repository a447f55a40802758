// multilabel_soft_margin_loss: not written yet.
#include "common.hpp"

namespace lossbench::ref {

Evaluation evaluate_multilabel_soft_margin_loss(const Request&) {
  throw Error(ErrorKind::Value, "the reference of multilabel_soft_margin_loss is not written yet");
}

}  // namespace lossbench::ref
