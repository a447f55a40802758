// kl_div: not written yet.
#include "common.hpp"

namespace lossbench::ref {

Evaluation evaluate_kl_div(const Request&) {
  throw Error(ErrorKind::Value, "the reference of kl_div is not written yet");
}

}  // namespace lossbench::ref
