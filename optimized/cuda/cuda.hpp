#pragma once
// The CUDA backend behind the ABI (include/lossbench/abi.h), registered as "cuda": the
// elementwise losses of the CPU backend on device 0, tensors on the device (the scorer allocates
// and copies them with the table's device hooks). Without a CUDA device (cudaGetDeviceCount
// fails or returns 0) supports() is false for every case and the version says "no CUDA device".
#include "lossbench/abi.h"

namespace lossbench::opt {

const lb_impl* cuda_impl();
// Is a CUDA device usable (cudaGetDeviceCount > 0)?
bool cuda_available();

}  // namespace lossbench::opt
