// cosine_embedding_loss: not written yet.
#include "common.hpp"

namespace lossbench::ref {

Evaluation evaluate_cosine_embedding_loss(const Request&) {
  throw Error(ErrorKind::Value, "the reference of cosine_embedding_loss is not written yet");
}

}  // namespace lossbench::ref
