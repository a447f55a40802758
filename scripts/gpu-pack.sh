#!/usr/bin/env bash
# Builds the CUDA checks on this machine and packs them, with the shared libraries they need
# beyond glibc and the CUDA driver, into gpu-pack/ (ignored by git), for a GPU machine that has
# the driver but not the project's Debian libraries (the lent H200 starts bare and cannot fetch
# packages). There, scripts/gpu-check.sh finds gpu-pack/ and runs the packed programs instead
# of building (the device tool: carry ["gpu-pack"]).
#   scripts/gpu-pack.sh        (then: du -sh gpu-pack; it must stay under the 64 MiB a call carries)
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset release >/dev/null
cmake --build build/release --target test_cuda lossbench lossbench-cuda-bench
rm -rf gpu-pack && mkdir -p gpu-pack/lib
bins=(build/release/optimized/cuda/test_cuda build/release/lossbench
      build/release/optimized/cuda/lossbench-cuda-bench)
cp "${bins[@]}" gpu-pack/
for b in "${bins[@]}"; do ldd "$b"; done | awk '/=> \//{print $3}' | sort -u |
  grep -v -E '/(libc|libm|libpthread|libdl|librt|libcuda)\.so|/ld-linux' |
  xargs -r cp -L -t gpu-pack/lib/
strip gpu-pack/test_cuda gpu-pack/lossbench gpu-pack/lossbench-cuda-bench
git rev-parse --short=12 HEAD >gpu-pack/COMMIT
du -sh gpu-pack
