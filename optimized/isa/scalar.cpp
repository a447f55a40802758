// The scalar path: the formulas over double, with the C library's exp/log/log1p (glibc: under
// 1 ULP). Compiled without any -m flag, so it runs on every x86-64.
#include "../drivers/block.hpp"

namespace lossbench::opt {

const KernelTable& scalar_kernels() {
  static const KernelTable table = kernels::make_table<double>("scalar");
  return table;
}

}  // namespace lossbench::opt
