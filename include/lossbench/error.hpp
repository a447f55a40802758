#pragma once
// Errors lossbench reports for a case. Each carries a class that mirrors the exception PyTorch
// would raise for the same input, so an "error" golden case can name what it expects.
#include <stdexcept>
#include <string>
#include <string_view>

namespace lossbench {

enum class ErrorKind {
  Format,  // the case document itself is malformed (not a PyTorch error)
  Value,   // PyTorch raises ValueError or a RuntimeError about a value (bad reduction, eps < 0)
  ShapeMismatch,  // sizes that do not match or cannot broadcast
  Index,          // a class index or target outside its range
  Type,           // a dtype PyTorch does not accept for that argument
  Precision,      // the reference could not certify a result within its precision cap
};

std::string_view to_string(ErrorKind kind);

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

// Throws Error(kind, message) unless cond holds.
inline void check(bool cond, ErrorKind kind, const std::string& message) {
  if (!cond) throw Error(kind, message);
}

}  // namespace lossbench
