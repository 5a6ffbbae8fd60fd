#!/usr/bin/env bash
# gpu_check.sh: builds and runs the NCCL communicator tests (ctest label "gpu":
# tests/cluster/nccl_test.cc) on a GPU machine whose image has a CUDA build of PyTorch (LibTorch
# headers and CMake config inside the Python package), nvcc and NCCL, but no Debian packages
# and no network. Usage, from the repository root or anywhere:
#
#   bench/gpu_check.sh            # detect, build in build-gpu/, run the gpu tests
#   CHECK_ONLY=1 bench/gpu_check.sh   # only report what is found and what is missing
#
# What it needs, and where it looks:
#   - LibTorch with CUDA:   python3 -c 'import torch; print(torch.utils.cmake_prefix_path)'
#   - CUDA runtime:         cuda_runtime_api.h + libcudart from the nvidia-cuda-runtime wheel
#                           next to torch, else $CUDA_HOME, /usr/local/cuda or nvcc's prefix
#   - NCCL:                 nccl.h + libnccl from the nvidia-nccl wheel next to torch (the one
#                           torch itself loads), else the CUDA prefix
#   - GoogleTest:           its sources (googletest/src/gtest-all.cc, compiled here with
#                           LibTorch's ABI flags) or headers + CMake config
#   - cmake >= 3.25, a C++17 compiler; ninja if present.
# Two build modes:
#   - full:       every dependency of the whole project is present (protobuf + protoc, glog,
#                 GoogleTest, MPI, nlohmann_json, zlib): configure the project in build-gpu/
#                 and build cluster_nccl_test (and cluster_mpi_test), run ctest -L gpu.
#   - standalone: otherwise (the usual case): the NCCL tests need none of protobuf, glog or
#                 MPI (they bootstrap NCCL over a SelfCommunicator at world size 1), so a small
#                 CMake project written to build-gpu/standalone/ compiles just cluster/base,
#                 cluster/comm (without its MPI files) and the test.
#
# Carrying missing Debian packages (the GPU machine has no network): on a Debian bookworm
# machine with network, fetch the .deb files without installing them, e.g.
#     apt-get download googletest libgtest-dev
#     # full mode also: libprotobuf-dev protobuf-compiler libprotobuf32 libprotoc32
#     #   libgoogle-glog-dev libgoogle-glog0v6 libgflags-dev libgflags2.2 nlohmann-json3-dev
#     #   zlib1g-dev libopenmpi-dev libopenmpi3 openmpi-bin (+ their own dependencies)
# and put them in the repository under .dev/debs/ (git-ignored: .gitignore lists /.dev/; pass
# ".dev" in the device tool's `carry` list so that it travels with the working tree). This
# script unpacks each .dev/debs/*.deb with `dpkg -x` (or `ar x` + tar when dpkg is absent)
# into .dev/root/ -- nothing is installed system-wide and no root is needed -- and adds
# .dev/root/usr to CMAKE_PREFIX_PATH and to the header/library search paths.
#
# Exit status: 0 when the gpu tests pass, 1 when they fail, 2 when something is missing.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${REPO}/build-gpu"
DEV_ROOT="${REPO}/.dev/root"
MULTIARCH="$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)"
MISSING=()

say() { printf '[gpu_check] %s\n' "$*"; }
found() { printf '[gpu_check]   %-16s %s\n' "$1" "$2"; }
missing() {
  printf '[gpu_check]   %-16s MISSING: %s\n' "$1" "$2"
  MISSING+=("$1")
}

# --- carried .deb files ----------------------------------------------------------------------
unpack_debs() {
  local debs=("${REPO}"/.dev/debs/*.deb)
  [[ -e "${debs[0]}" ]] || return 0
  mkdir -p "${DEV_ROOT}"
  local deb
  for deb in "${debs[@]}"; do
    local stamp
    stamp="${DEV_ROOT}/.unpacked-$(basename "${deb}")"
    [[ -e "${stamp}" ]] && continue
    say "unpacking $(basename "${deb}") into .dev/root"
    if command -v dpkg >/dev/null; then
      dpkg -x "${deb}" "${DEV_ROOT}"
    else
      local tmp
      tmp="$(mktemp -d)"
      (cd "${tmp}" && ar x "${deb}" && tar -xf data.tar.* -C "${DEV_ROOT}")
      rm -rf "${tmp}"
    fi
    touch "${stamp}"
  done
}

# First directory among the arguments that holds the relative path $1.
find_in() {
  local rel="$1"
  shift
  local dir
  for dir in "$@"; do
    if [[ -n "${dir}" && -e "${dir}/${rel}" ]]; then
      echo "${dir}"
      return 0
    fi
  done
  return 1
}

INCLUDE_DIRS=("${DEV_ROOT}/usr/include" /usr/include /usr/local/include)
LIB_DIRS=("${DEV_ROOT}/usr/lib/${MULTIARCH}" "${DEV_ROOT}/usr/lib" "/usr/lib/${MULTIARCH}"
  /usr/lib /usr/local/lib)

detect() {
  say "looking for the build's dependencies (repository: ${REPO})"
  if command -v cmake >/dev/null; then
    local version
    version="$(cmake --version | head -1 | awk '{print $3}')"
    if printf '3.25\n%s\n' "${version}" | sort -V -C; then
      found cmake "${version}"
    else
      missing cmake "version ${version} < 3.25 (pip install cmake, or carry a newer binary)"
    fi
  else
    missing cmake "not on PATH"
  fi
  if command -v c++ >/dev/null || command -v g++ >/dev/null; then
    found "c++" "$(command -v c++ || command -v g++)"
  else
    missing "c++" "no C++17 compiler on PATH"
  fi
  GENERATOR=()
  if command -v ninja >/dev/null; then GENERATOR=(-G Ninja); fi

  # LibTorch (CUDA build) inside the Python package.
  TORCH_PREFIX=""
  TORCH_ABI=""
  SITE=""
  if TORCH_PREFIX="$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null)"; then
    TORCH_ABI="$(python3 -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')"
    SITE="$(python3 -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))')"
    local cuda
    cuda="$(python3 -c 'import torch; print(torch.version.cuda or "")')"
    if [[ -z "${cuda}" ]]; then
      missing torch "the installed torch is a CPU build (torch.version.cuda is None)"
    else
      found torch "${TORCH_PREFIX} (CUDA ${cuda}, CXX11 ABI ${TORCH_ABI})"
    fi
  else
    missing torch "python3 cannot import torch"
  fi

  # CUDA runtime and NCCL: prefer the wheels torch loads, then the toolkit.
  local cuda_home="${CUDA_HOME:-}"
  if [[ -z "${cuda_home}" ]] && command -v nvcc >/dev/null; then
    cuda_home="$(dirname "$(dirname "$(command -v nvcc)")")"
  fi
  [[ -n "${cuda_home}" ]] || cuda_home=/usr/local/cuda
  local wheel_rt="${SITE:+${SITE}/nvidia/cuda_runtime}"
  local wheel_nccl="${SITE:+${SITE}/nvidia/nccl}"
  if CUDART_ROOT="$(find_in include/cuda_runtime_api.h "${wheel_rt}" "${cuda_home}")"; then
    CUDART_LIB="$(find "${CUDART_ROOT}/lib" "${CUDART_ROOT}/lib64" -maxdepth 1 \
      -name 'libcudart.so*' 2>/dev/null | sort | head -1 || true)"
  fi
  if [[ -n "${CUDART_ROOT:-}" && -n "${CUDART_LIB:-}" ]]; then
    found cudart "${CUDART_LIB}"
  else
    missing cudart "cuda_runtime_api.h / libcudart (set CUDA_HOME)"
  fi
  if NCCL_ROOT="$(find_in include/nccl.h "${wheel_nccl}" "${cuda_home}" /usr)"; then
    NCCL_LIB="$(find "${NCCL_ROOT}/lib" "${NCCL_ROOT}/lib64" "${NCCL_ROOT}/lib/${MULTIARCH}" \
      -maxdepth 1 -name 'libnccl.so*' 2>/dev/null | sort | head -1 || true)"
  fi
  if [[ -n "${NCCL_ROOT:-}" && -n "${NCCL_LIB:-}" ]]; then
    found nccl "${NCCL_LIB}"
  else
    missing nccl "nccl.h / libnccl (pip wheel nvidia-nccl-cu*, or the CUDA prefix)"
  fi
  if command -v nvidia-smi >/dev/null; then
    found gpu "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
  else
    say "  (nvidia-smi not found; the tests skip when no CUDA device is visible)"
  fi

  # GoogleTest: sources preferred (built with torch's ABI), else a prebuilt library.
  GTEST_SRC=""
  if GTEST_SRC="$(find_in googletest/src/gtest-all.cc "${DEV_ROOT}/usr/src/googletest" \
    /usr/src/googletest)"; then
    found gtest "sources in ${GTEST_SRC}"
  elif find_in gtest/gtest.h "${INCLUDE_DIRS[@]}" >/dev/null &&
    find_in libgtest.a "${LIB_DIRS[@]}" >/dev/null; then
    found gtest "prebuilt (must match torch's CXX11 ABI ${TORCH_ABI:-?})"
  else
    missing gtest "carry googletest + libgtest-dev .debs in .dev/debs/"
  fi

  # Only for the full project build.
  FULL_READY=1
  local name rel
  for pair in "protobuf:google/protobuf/message.h" "glog:glog/logging.h" \
    "nlohmann_json:nlohmann/json.hpp" "zlib:zlib.h" "mpi:mpi.h"; do
    name="${pair%%:*}"
    rel="${pair#*:}"
    if find_in "${rel}" "${INCLUDE_DIRS[@]}" "${INCLUDE_DIRS[1]}/${MULTIARCH}/openmpi" \
      "/usr/lib/${MULTIARCH}/openmpi/include" >/dev/null; then
      found "${name}" "found (full project build possible)"
    else
      printf '[gpu_check]   %-16s absent (only the full project build needs it)\n' "${name}"
      FULL_READY=0
    fi
  done
  command -v protoc >/dev/null || FULL_READY=0
  command -v mpicxx >/dev/null || FULL_READY=0
}

write_standalone_project() {
  mkdir -p "${BUILD}/standalone"
  cat >"${BUILD}/standalone/CMakeLists.txt" <<'CMAKE'
# Written by bench/gpu_check.sh: the NCCL communicator tests without MPI, glog or protobuf.
cmake_minimum_required(VERSION 3.25)
project(flexmoe_gpu_check LANGUAGES C CXX)
set(CMAKE_CXX_STANDARD 17)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
if(NOT CMAKE_BUILD_TYPE)
  set(CMAKE_BUILD_TYPE Release)
endif()
find_package(Torch REQUIRED)
set(R ${FLEXMOE_ROOT})
add_library(flexmoe_cluster_gpu
  ${R}/cluster/base/error.cc ${R}/cluster/comm/deadline.cc ${R}/cluster/comm/split_check.cc
  ${R}/cluster/comm/self_communicator.cc ${R}/cluster/comm/process_groups.cc
  ${R}/cluster/comm/nccl_communicator.cc)
target_include_directories(flexmoe_cluster_gpu PUBLIC ${R})
target_include_directories(flexmoe_cluster_gpu PRIVATE ${NCCL_INCLUDE_DIR} ${CUDART_INCLUDE_DIR})
target_link_libraries(flexmoe_cluster_gpu PUBLIC ${TORCH_LIBRARIES} ${NCCL_LIBRARY} ${CUDART_LIBRARY})
target_compile_definitions(flexmoe_cluster_gpu PUBLIC FLEXMOE_HAVE_NCCL=1)
if(GTEST_SRC)
  add_library(gtest_local ${GTEST_SRC}/googletest/src/gtest-all.cc
                          ${GTEST_SRC}/googletest/src/gtest_main.cc)
  target_include_directories(gtest_local PUBLIC ${GTEST_SRC}/googletest/include
                                         PRIVATE ${GTEST_SRC}/googletest)
  target_compile_options(gtest_local PRIVATE ${TORCH_CXX_FLAGS})
  find_package(Threads REQUIRED)
  target_link_libraries(gtest_local PUBLIC Threads::Threads)
  set(GTEST_LIBS gtest_local)
else()
  find_package(GTest REQUIRED)
  set(GTEST_LIBS GTest::gtest GTest::gtest_main)
endif()
add_executable(cluster_nccl_test ${R}/tests/cluster/nccl_test.cc)
target_include_directories(cluster_nccl_test PRIVATE ${R} ${CUDART_INCLUDE_DIR})
target_link_libraries(cluster_nccl_test PRIVATE flexmoe_cluster_gpu ${GTEST_LIBS})
enable_testing()
add_test(NAME cluster_nccl_test COMMAND cluster_nccl_test --gtest_filter=-*Deadline*)
add_test(NAME cluster_nccl_deadline_test COMMAND cluster_nccl_test --gtest_filter=*Deadline*)
set_tests_properties(cluster_nccl_test cluster_nccl_deadline_test PROPERTIES
  LABELS gpu TIMEOUT 300)
CMAKE
}

main() {
  unpack_debs
  detect
  if ((${#MISSING[@]} > 0)); then
    say "missing: ${MISSING[*]}"
    say "see the header of bench/gpu_check.sh for how to carry .deb files in .dev/debs/"
    exit 2
  fi
  if [[ -n "${CHECK_ONLY:-}" ]]; then
    say "CHECK_ONLY set: not building"
    exit 0
  fi
  local prefix="${TORCH_PREFIX};${DEV_ROOT}/usr"
  local cuda_defs=(-DNCCL_INCLUDE_DIR="${NCCL_ROOT}/include" -DNCCL_LIBRARY="${NCCL_LIB}"
    -DCUDART_INCLUDE_DIR="${CUDART_ROOT}/include" -DCUDART_LIBRARY="${CUDART_LIB}")
  local dir
  if ((FULL_READY)); then
    say "mode: full project build in ${BUILD}"
    dir="${BUILD}"
    cmake -S "${REPO}" -B "${dir}" "${GENERATOR[@]}" -DCMAKE_PREFIX_PATH="${prefix}" \
      "${cuda_defs[@]}"
    cmake --build "${dir}" --target cluster_nccl_test cluster_mpi_test -j"$(nproc)"
  else
    say "mode: standalone (NCCL tests only) in ${BUILD}/standalone"
    write_standalone_project
    dir="${BUILD}/standalone/build"
    cmake -S "${BUILD}/standalone" -B "${dir}" "${GENERATOR[@]}" \
      -DCMAKE_PREFIX_PATH="${prefix}" -DFLEXMOE_ROOT="${REPO}" -DGTEST_SRC="${GTEST_SRC}" \
      "${cuda_defs[@]}"
    cmake --build "${dir}" --target cluster_nccl_test -j"$(nproc)"
  fi
  say "running the gpu tests"
  local status=0
  (cd "${dir}" && ctest -L gpu --output-on-failure) || status=1
  if ((status == 0)); then
    say "gpu tests passed"
  else
    say "gpu tests FAILED"
  fi
  exit "${status}"
}

main "$@"
