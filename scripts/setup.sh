#!/usr/bin/env bash
# Installs what lossbench needs to build and test, from Debian's packages. Idempotent: it only
# calls apt-get when a package is missing.
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config clang-format
  libmpfr-dev libgmp-dev libboost-dev
  nlohmann-json3-dev libcli11-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libssl-dev libhwy-dev
  python3 python3-venv
  chromium
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
