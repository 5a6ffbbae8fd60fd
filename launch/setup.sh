#!/usr/bin/env bash
# Installs the Debian 12 packages flexmoe needs (quick when they are present) and builds
# it into build/ with Ninja and ccache. Usage: launch/setup.sh [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config clang-format
  # Every command's flags and --help: CLI11 (header-only).
  libcli11-dev
  libtorch-dev libopenblas0-pthread
  libopenmpi-dev openmpi-bin
  libboost-dev libboost-system-dev
  libprotobuf-dev protobuf-compiler
  libgoogle-glog-dev libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev zlib1g-dev python3 python3-numpy
  # The SLURM system test (tests/launch/slurm_test.sh) starts a single-node SLURM.
  slurmctld slurmd slurm-client munge
  # `flexmoe report` draws its figures with gnuplot (pngcairo terminal); bench/baselines.py
  # runs scikit-learn's baselines.
  gnuplot-nox python3-sklearn
  # /usr/bin/time measures predict's peak memory in tests/inference/inference_cli_test.cc.
  time
  # The launch scripts end a job's process trees (pgrep); the virtual cluster of the cluster
  # tests makes network namespaces, links and qdiscs (ip, tc, ss).
  procps iproute2
  # The lease's test runs holders and contenders with clocks 60 s off (libfaketime).
  faketime
  # The live page's test loads it in headless Chromium; promtool (Debian's prometheus)
  # checks the /metrics text.
  chromium prometheus
  # Array modalities: HDF5 and AnnData (.h5ad) input; the tests and docs/data.md write them
  # from Python with h5py and anndata.
  libhdf5-dev python3-h5py python3-anndata
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# LibTorch calls whichever BLAS the alternatives select; the reference BLAS is ~8x slower.
blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)
case "$blas" in
  *openblas*) ;;
  *)
    echo "setup: selecting OpenBLAS for libblas.so.3 (was: ${blas:-none})"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO update-alternatives --set libblas.so.3-x86_64-linux-gnu \
      /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3
    $SUDO update-alternatives --set liblapack.so.3-x86_64-linux-gnu \
      /usr/lib/x86_64-linux-gnu/openblas-pthread/liblapack.so.3 || true
    ;;
esac

[ "${1:-}" = "--no-build" ] && exit 0
jobs=$(nproc)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
