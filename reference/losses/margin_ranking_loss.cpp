// margin_ranking_loss: not written yet.
#include "common.hpp"

namespace lossbench::ref {

Evaluation evaluate_margin_ranking_loss(const Request&) {
  throw Error(ErrorKind::Value, "the reference of margin_ranking_loss is not written yet");
}

}  // namespace lossbench::ref
