#include "lossbench/error.hpp"

namespace lossbench {

std::string_view to_string(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::Format: return "case_format";
    case ErrorKind::Value: return "value_error";
    case ErrorKind::ShapeMismatch: return "shape_error";
    case ErrorKind::Index: return "index_error";
    case ErrorKind::Type: return "type_error";
    case ErrorKind::Precision: return "precision_error";
  }
  return "error";
}

}  // namespace lossbench
