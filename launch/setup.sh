#!/usr/bin/env bash
# Installs the Debian 12 packages flexmoe needs (quick when they are present) and builds
# it into build/ with Ninja and ccache.
#   launch/setup.sh             what the tests and benchmarks need too, then builds everything
#                               (launch/test.sh, CI);
#   launch/setup.sh --runtime   only what building and running a job needs, then builds the
#                               flexmoe binary (launch/run.sh);
#   --no-build                  installs only.
set -euo pipefail
cd "$(dirname "$0")/.."

runtime=0 build=1
for a in "$@"; do
  case "$a" in
    --runtime) runtime=1 ;;
    --no-build) build=0 ;;
    *) echo "setup.sh: unknown argument $a (expected --runtime, --no-build)" >&2; exit 2 ;;
  esac
done

# Building and running a job: train, the coordinator and loaders, mpirun and the launch
# scripts, eval/predict/report.
RUNTIME_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config
  # Every command's flags and --help: CLI11 (header-only).
  libcli11-dev
  libtorch-dev libopenblas0-pthread
  libopenmpi-dev openmpi-bin
  libboost-dev libboost-system-dev
  libprotobuf-dev protobuf-compiler
  libgoogle-glog-dev nlohmann-json3-dev zlib1g-dev python3
  # Array modalities: HDF5 and AnnData (.h5ad) input.
  libhdf5-dev
  # `flexmoe report` (run at the end of `flexmoe train`) draws its figures with gnuplot
  # (pngcairo terminal).
  gnuplot-nox
  # The launch scripts end a job's process trees (pgrep).
  procps
)
# The tests and benchmarks besides.
TEST_PACKAGES=(
  clang-format libgtest-dev libgmock-dev libbenchmark-dev
  # The fixtures' writers and bench/baselines.py (scikit-learn's baselines).
  python3-numpy python3-sklearn
  # The SLURM system test (tests/launch/slurm_test.sh) starts a single-node SLURM.
  slurmctld slurmd slurm-client munge
  # /usr/bin/time measures predict's peak memory in tests/inference/inference_cli_test.cc.
  time
  # The virtual cluster of the cluster tests makes network namespaces, links and qdiscs
  # (ip, tc, ss).
  iproute2
  # The lease's test runs holders and contenders with clocks 60 s off (libfaketime).
  faketime
  # The live page's test loads it in headless Chromium; promtool (Debian's prometheus)
  # checks the /metrics text.
  chromium prometheus
  # The tests and docs/data.md write HDF5 and AnnData input from Python.
  python3-h5py python3-anndata
)
PACKAGES=("${RUNTIME_PACKAGES[@]}")
[ "$runtime" -eq 1 ] || PACKAGES+=("${TEST_PACKAGES[@]}")

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

[ "$build" -eq 1 ] || exit 0
jobs=$(nproc)
if [ "$runtime" -eq 1 ]; then
  # The tests stay configured where GoogleTest is installed (after launch/test.sh); only the
  # binary is built.
  tests=OFF
  dpkg-query -W -f='${Status}' libgtest-dev 2>/dev/null | grep -q "install ok installed" && tests=ON
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DFLEXMOE_BUILD_TESTS=$tests >/dev/null
  cmake --build build -j"$jobs" --target flexmoe
else
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DFLEXMOE_BUILD_TESTS=ON >/dev/null
  cmake --build build -j"$jobs"
fi
