#!/usr/bin/env bash
# gpu_check.sh: builds and runs the NCCL communicator tests (ctest label "gpu":
# tests/cluster/nccl_test.cc) and the MoE layer benchmark at world size 1
# (bench/moe_layer_gpu_bench.cc: the expert-parallel layer over NCCL, the same layer with local
# experts, a dense FFN of the same active size) on a GPU machine whose image has a CUDA build
# of PyTorch (LibTorch headers and CMake config inside the Python package), nvcc and NCCL, but
# no Debian packages and no network. Usage, from the repository root or anywhere:
#
#   bench/gpu_check.sh            # detect, build in build-gpu/, run the gpu tests and the bench
#   CHECK_ONLY=1 bench/gpu_check.sh   # only report what is found and what is missing
#   PYTHON=/path/to/python bench/gpu_check.sh   # the Python whose torch to use
#   BENCH_ARGS="--tokens 8192 --dim 256" bench/gpu_check.sh   # one extra bench configuration
#   (also: GPU_CHECK_BUILD=DIR instead of build-gpu/, FORCE_STANDALONE=1, BENCH_TIMEOUT_S=240)
#
# What it needs, and where it looks:
#   - LibTorch with CUDA:   $PYTHON, python3 or python: torch.utils.cmake_prefix_path
#   - CUDA runtime:         cuda_runtime_api.h + libcudart from the nvidia-cuda-runtime wheel
#                           next to torch, else $CUDA_HOME, /usr/local/cuda or nvcc's prefix
#   - NCCL:                 nccl.h + libnccl from the nvidia-nccl wheel next to torch (the one
#                           torch itself loads), else the CUDA prefix
#   - GoogleTest:           its sources (googletest/src/gtest-all.cc, compiled here with
#                           LibTorch's ABI flags) or headers + CMake config
#   - cmake >= 3.25 (on PATH or the `cmake` pip package), a C++17 compiler; ninja if present.
# Two build modes:
#   - full:       every dependency of the whole project is present (protobuf + protoc, glog,
#                 GoogleTest, MPI, nlohmann_json, zlib): configure the project in build-gpu/
#                 and build cluster_nccl_test, cluster_mpi_test and moe_layer_gpu_bench, run
#                 ctest -L gpu and the bench.
#   - standalone: otherwise (the usual case): the NCCL tests and the bench need none of
#                 protobuf, glog or MPI (NCCL is bootstrapped over a SelfCommunicator at world
#                 size 1), so a small CMake project written to build-gpu/standalone/ compiles
#                 just cluster/base, cluster/comm (without its MPI files), experts/, the test
#                 and the bench. experts/ uses glog's CHECK macros: a shim header there maps
#                 them onto LibTorch's own (c10/util/Logging.h), so glog is never linked unless
#                 LibTorch itself was built with it (and then its glog is the one used).
#                 LibTorch is taken with find_package(Torch); should that configure step fail
#                 (Caffe2's CUDA detection: nvToolsExt, cuDNN, nvcc), the project is configured
#                 again with torch's include/ and lib/ used directly, as
#                 torch.utils.cpp_extension does.
#
# Carrying missing Debian packages (the GPU machine has no network): on a Debian bookworm
# machine with network, fetch the .deb files without installing them, e.g.
#     apt-get download googletest          # the standalone mode needs only this one
#     # full mode also: libgtest-dev libprotobuf-dev protobuf-compiler libprotobuf32
#     #   libprotoc32 libgoogle-glog-dev libgoogle-glog0v6 libgflags-dev libgflags2.2
#     #   nlohmann-json3-dev zlib1g-dev libopenmpi-dev libopenmpi3 openmpi-bin (+ their own
#     #   dependencies)
# and put them in the repository under .dev/debs/ (git-ignored: .gitignore lists /.dev/; pass
# ".dev" in the device tool's `carry` list so that it travels with the working tree). This
# script unpacks each .dev/debs/*.deb with `dpkg -x` (or `ar x` + tar when dpkg is absent)
# into .dev/root/ -- nothing is installed system-wide and no root is needed -- and adds
# .dev/root/usr to CMAKE_PREFIX_PATH and to the header/library search paths.
#
# Every step prints what it does; a failing command is named with its line. Exit status: 0
# when the gpu tests pass (none skipped) and every bench run measured, 1 when a test or a
# bench run fails, 2 when something is missing.
set -Eeuo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${GPU_CHECK_BUILD:-${REPO}/build-gpu}"
DEV_ROOT="${REPO}/.dev/root"
MULTIARCH="$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)"
MISSING=()
# Bench configurations run after the tests (one line each; BENCH_ARGS adds one).
BENCH_RUNS=(
  "--tokens 4096 --dim 128 --experts 16 --top_k 4 --iters 50"
  "--tokens 65536 --dim 512 --experts 16 --top_k 4 --iters 20"
)
BENCH_TIMEOUT_S="${BENCH_TIMEOUT_S:-240}"

say() { printf '[gpu_check] %s\n' "$*"; }
found() { printf '[gpu_check]   %-16s %s\n' "$1" "$2"; }
missing() {
  printf '[gpu_check]   %-16s MISSING: %s\n' "$1" "$2"
  MISSING+=("$1")
}
trap 'say "FAILED (exit $?) at line ${LINENO}: ${BASH_COMMAND}"' ERR

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

# The machine, for the log: OS, GPU, driver, compilers, Python and torch.
report_machine() {
  local memory
  memory="$(free -g 2>/dev/null | awk '/^Mem:/ {print $2 " GiB memory"}' || true)"
  say "machine: $(uname -srm); $(nproc) cores; ${memory}"
  if command -v nvidia-smi >/dev/null; then
    say "nvidia-smi -L:"
    nvidia-smi -L 2>&1 | sed 's/^/[gpu_check]     /' || true
    say "nvidia-smi (name, driver, memory, utilisation):"
    nvidia-smi --query-gpu=index,name,driver_version,memory.total,memory.used,utilization.gpu \
      --format=csv 2>&1 | sed 's/^/[gpu_check]     /' || true
  else
    say "nvidia-smi: not on PATH"
  fi
  if command -v nvcc >/dev/null; then
    say "nvcc: $(command -v nvcc): $(nvcc --version | tail -n 2 | tr '\n' ' ')"
  else
    say "nvcc: not on PATH (CUDA_HOME=${CUDA_HOME:-unset})"
  fi
  say "c++: $( (c++ --version || g++ --version) 2>/dev/null | head -1)"
  if [[ -n "${PY:-}" ]]; then
    say "python: ${PY} ($("${PY}" --version 2>&1))"
    "${PY}" - <<'PY' 2>&1 | sed 's/^/[gpu_check]     /' || true
import torch
print("torch", torch.__version__, "| CUDA", torch.version.cuda, "| cuDNN",
      torch.backends.cudnn.version(), "| CXX11 ABI", int(torch._C._GLIBCXX_USE_CXX11_ABI))
print("cuda available:", torch.cuda.is_available(), "| devices:", torch.cuda.device_count())
try:
    print("NCCL (torch):", ".".join(map(str, torch.cuda.nccl.version())))
except Exception as e:
    print("NCCL (torch): unknown:", e)
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("device 0:", p.name, "| capability %d.%d" % (p.major, p.minor),
          "| %.1f GiB" % (p.total_memory / 2**30))
PY
  fi
}

# The Python whose torch is used: $PYTHON, else python3, else python (the first with torch).
pick_python() {
  PY=""
  local candidate
  for candidate in ${PYTHON:-} python3 python; do
    if command -v "${candidate}" >/dev/null && "${candidate}" -c 'import torch' 2>/dev/null; then
      PY="$(command -v "${candidate}")"
      return 0
    fi
  done
  # None imports torch: keep the first that exists, for the error message.
  for candidate in ${PYTHON:-} python3 python; do
    if command -v "${candidate}" >/dev/null; then
      PY="$(command -v "${candidate}")"
      return 0
    fi
  done
}

detect() {
  say "looking for the build's dependencies (repository: ${REPO})"
  pick_python
  # cmake and ninja from their pip packages when not on PATH.
  if [[ -n "${PY}" ]]; then
    local bin
    if ! command -v cmake >/dev/null &&
      bin="$("${PY}" -c 'import cmake; print(cmake.CMAKE_BIN_DIR)' 2>/dev/null)"; then
      say "  cmake: using the pip package's ${bin}"
      PATH="${bin}:${PATH}"
    fi
    if ! command -v ninja >/dev/null &&
      bin="$("${PY}" -c 'import ninja; print(ninja.BIN_DIR)' 2>/dev/null)"; then
      PATH="${bin}:${PATH}"
    fi
  fi
  if command -v cmake >/dev/null; then
    local version
    version="$(cmake --version | head -1 | awk '{print $3}')"
    if printf '3.25\n%s\n' "${version}" | sort -V -C; then
      found cmake "${version} ($(command -v cmake))"
    else
      missing cmake "version ${version} < 3.25 (pip install cmake, or carry a newer binary)"
    fi
  else
    missing cmake "not on PATH (nor the pip package cmake)"
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
  TORCH_PKG=""
  SITE=""
  if [[ -n "${PY}" ]] && TORCH_PREFIX="$("${PY}" -c \
    'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null)"; then
    TORCH_ABI="$("${PY}" -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')"
    TORCH_PKG="$("${PY}" -c 'import os, torch; print(os.path.dirname(torch.__file__))')"
    SITE="$(dirname "${TORCH_PKG}")"
    local cuda version
    cuda="$("${PY}" -c 'import torch; print(torch.version.cuda or "")')"
    version="$("${PY}" -c 'import torch; print(torch.__version__)')"
    if [[ -z "${cuda}" ]]; then
      missing torch "torch ${version} is a CPU build (torch.version.cuda is None)"
    else
      found torch "${version} at ${TORCH_PKG} (CUDA ${cuda}, CXX11 ABI ${TORCH_ABI})"
    fi
  else
    missing torch "${PY:-python3} cannot import torch (set PYTHON to the Python that has it)"
  fi

  # CUDA runtime and NCCL: prefer the wheels torch loads, then the toolkit.
  CUDA_HOME_FOUND="${CUDA_HOME:-}"
  if [[ -z "${CUDA_HOME_FOUND}" ]] && command -v nvcc >/dev/null; then
    CUDA_HOME_FOUND="$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")"
  fi
  [[ -n "${CUDA_HOME_FOUND}" ]] || CUDA_HOME_FOUND=/usr/local/cuda
  local cuda_home="${CUDA_HOME_FOUND}"
  local wheel_rt="${SITE:+${SITE}/nvidia/cuda_runtime}"
  local wheel_nccl="${SITE:+${SITE}/nvidia/nccl}"
  CUDART_ROOT=""
  CUDART_LIB=""
  if CUDART_ROOT="$(find_in include/cuda_runtime_api.h "${wheel_rt}" "${SITE:+${SITE}/nvidia/cu13}" \
    "${cuda_home}" "${cuda_home}/targets/x86_64-linux")"; then
    CUDART_LIB="$(find -L "${CUDART_ROOT}/lib" "${CUDART_ROOT}/lib64" -maxdepth 1 \
      -name 'libcudart.so*' 2>/dev/null | sort | head -1 || true)"
    # CUDA 13 toolkits keep the libraries under targets/<arch>/lib.
    [[ -n "${CUDART_LIB}" ]] || CUDART_LIB="$(find -L "${CUDART_ROOT}" -maxdepth 4 \
      -name 'libcudart.so*' 2>/dev/null | sort | head -1 || true)"
  fi
  if [[ -n "${CUDART_ROOT:-}" && -n "${CUDART_LIB:-}" ]]; then
    found cudart "${CUDART_LIB}"
  else
    missing cudart "cuda_runtime_api.h / libcudart (set CUDA_HOME)"
  fi
  NCCL_ROOT=""
  NCCL_LIB=""
  if NCCL_ROOT="$(find_in include/nccl.h "${wheel_nccl}" "${cuda_home}" /usr)"; then
    NCCL_LIB="$(find -L "${NCCL_ROOT}/lib" "${NCCL_ROOT}/lib64" "${NCCL_ROOT}/lib/${MULTIARCH}" \
      -maxdepth 1 -name 'libnccl.so*' 2>/dev/null | sort | head -1 || true)"
  fi
  if [[ -n "${NCCL_ROOT:-}" && -n "${NCCL_LIB:-}" ]]; then
    found nccl "${NCCL_LIB}"
  else
    missing nccl "nccl.h / libnccl (pip wheel nvidia-nccl-cu*, or the CUDA prefix)"
  fi
  if command -v nvidia-smi >/dev/null; then
    found gpu "$(nvidia-smi --query-gpu=name --format=csv,noheader 2>&1 | head -1)"
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
    missing gtest "carry the googletest .deb in .dev/debs/ (apt-get download googletest)"
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
  if [[ -n "${FORCE_STANDALONE:-}" ]]; then FULL_READY=0; fi
}

# The standalone CMake project in $1 (its CMakeLists.txt and the glog shim header).
write_standalone_project() {
  local dir="$1"
  mkdir -p "${dir}/glog_shim/glog"
  cat >"${dir}/glog_shim/glog/logging.h" <<'SHIM'
// Written by bench/gpu_check.sh: glog's CHECK macros for experts/ without glog. A LibTorch
// built without glog (the pip wheels) defines CHECK and CHECK_OP itself (c10/util/Logging.h);
// one built with glog (Debian's) gets the real header, which its c10 headers include anyway.
#pragma once
#include <c10/macros/Macros.h>
#ifdef C10_USE_GLOG
#include_next <glog/logging.h>
#else
#include <c10/util/Logging.h>
#ifndef CHECK
#include <cstdlib>
#include <iostream>
namespace flexmoe_glog_shim {
struct Fatal {
  ~Fatal() {
    std::cerr << std::endl;
    std::abort();
  }
  std::ostream& stream() { return std::cerr; }
};
struct Voidify {
  void operator&(std::ostream&) {}
};
}  // namespace flexmoe_glog_shim
#define CHECK(condition)                                     \
  (condition) ? (void)0                                      \
              : ::flexmoe_glog_shim::Voidify() &             \
                    ::flexmoe_glog_shim::Fatal().stream()    \
                        << __FILE__ << ":" << __LINE__ << " Check failed: " #condition " "
#endif
#ifndef CHECK_EQ
#ifdef CHECK_OP
#define CHECK_EQ(a, b) CHECK_OP(a, b, ==)
#else
#define CHECK_EQ(a, b) CHECK((a) == (b))
#endif
#endif
#endif
SHIM
  cat >"${dir}/blas_fallback.cc" <<'BLAS'
// Written by bench/gpu_check.sh: sgemm_ and dgemm_ (Fortran BLAS interface, column-major) as
// plain loops, for experts/cpu_blas.cc where neither a system BLAS nor LibTorch provides
// them. Only CPU tensors reach it; the GPU check never does. Hidden: the executable does not
// export them, so that a BLAS LibTorch loads itself is never interposed.
namespace {
template <typename T>
void PlainGemm(const char* transa, const char* transb, const int* m, const int* n, const int* k,
               const T* alpha, const T* a, const int* lda, const T* b, const int* ldb,
               const T* beta, T* c, const int* ldc) {
  const bool ta = *transa != 'N' && *transa != 'n';
  const bool tb = *transb != 'N' && *transb != 'n';
  for (int j = 0; j < *n; ++j) {
    for (int i = 0; i < *m; ++i) {
      T sum = 0;
      for (int p = 0; p < *k; ++p) {
        const T av = ta ? a[p + i * static_cast<long>(*lda)] : a[i + p * static_cast<long>(*lda)];
        const T bv = tb ? b[j + p * static_cast<long>(*ldb)] : b[p + j * static_cast<long>(*ldb)];
        sum += av * bv;
      }
      T& cij = c[i + j * static_cast<long>(*ldc)];
      cij = *alpha * sum + (*beta == T(0) ? T(0) : *beta * cij);
    }
  }
}
}  // namespace
extern "C" {
__attribute__((visibility("hidden"))) void sgemm_(
    const char* transa, const char* transb, const int* m, const int* n, const int* k,
    const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
    const float* beta, float* c, const int* ldc) {
  PlainGemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
__attribute__((visibility("hidden"))) void dgemm_(
    const char* transa, const char* transb, const int* m, const int* n, const int* k,
    const double* alpha, const double* a, const int* lda, const double* b, const int* ldb,
    const double* beta, double* c, const int* ldc) {
  PlainGemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
}
BLAS
  cat >"${dir}/CMakeLists.txt" <<'CMAKE'
# Written by bench/gpu_check.sh: the NCCL communicator tests and the MoE layer GPU benchmark
# without MPI, glog or protobuf.
cmake_minimum_required(VERSION 3.25)
project(flexmoe_gpu_check LANGUAGES C CXX)
set(CMAKE_CXX_STANDARD 17)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
if(NOT CMAKE_BUILD_TYPE)
  set(CMAKE_BUILD_TYPE Release)
endif()
option(FLEXMOE_TORCH_MANUAL "Use TORCH_INCLUDE_ROOT and TORCH_LIB_DIR, not find_package(Torch)" OFF)
if(FLEXMOE_TORCH_MANUAL)
  # As torch.utils.cpp_extension does: headers, ABI flag and libraries, no Caffe2 CMake.
  set(TORCH_INCLUDE_DIRS ${TORCH_INCLUDE_ROOT} ${TORCH_INCLUDE_ROOT}/torch/csrc/api/include)
  set(TORCH_CXX_FLAGS -D_GLIBCXX_USE_CXX11_ABI=${TORCH_ABI})
  set(_torch_libs)
  foreach(lib c10 torch_cpu torch c10_cuda torch_cuda)
    if(EXISTS ${TORCH_LIB_DIR}/lib${lib}.so)
      list(APPEND _torch_libs ${TORCH_LIB_DIR}/lib${lib}.so)
    endif()
  endforeach()
  message(STATUS "flexmoe: LibTorch used directly: ${TORCH_INCLUDE_ROOT}, ${_torch_libs}")
  add_library(torch_direct INTERFACE)
  target_include_directories(torch_direct SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})
  target_compile_options(torch_direct INTERFACE ${TORCH_CXX_FLAGS})
  # --no-as-needed: libtorch_cuda registers the CUDA backend when loaded; nothing references it.
  target_link_libraries(torch_direct INTERFACE "-Wl,--no-as-needed" ${_torch_libs})
  set(TORCH_LIBRARIES torch_direct)
  set(CMAKE_BUILD_RPATH ${TORCH_LIB_DIR})
else()
  # LibTorch < 2.8 asks for CUDA::nvToolsExt, which CUDA >= 12.9 no longer ships (nvtx3 is
  # header-only): stand in for it when missing, as an interface to CUDA::nvtx3.
  find_package(CUDAToolkit QUIET)
  if(CUDAToolkit_FOUND AND NOT TARGET CUDA::nvToolsExt AND TARGET CUDA::nvtx3)
    message(STATUS "flexmoe: CUDA::nvToolsExt missing: standing in with CUDA::nvtx3")
    add_library(CUDA::nvToolsExt INTERFACE IMPORTED)
    target_link_libraries(CUDA::nvToolsExt INTERFACE CUDA::nvtx3)
  endif()
  find_package(Torch REQUIRED)
endif()
message(STATUS "flexmoe: TORCH_CXX_FLAGS: ${TORCH_CXX_FLAGS}")

# glog: only when LibTorch itself was built with it (its c10 headers then include glog).
set(FLEXMOE_TORCH_GLOG OFF)
foreach(dir ${TORCH_INCLUDE_DIRS})
  if(EXISTS ${dir}/c10/macros/cmake_macros.h)
    file(STRINGS ${dir}/c10/macros/cmake_macros.h _glog REGEX "^#define C10_USE_GLOG")
    if(_glog)
      set(FLEXMOE_TORCH_GLOG ON)
    endif()
  endif()
endforeach()
set(GLOG_LIBS)
if(FLEXMOE_TORCH_GLOG)
  find_library(GLOG_LIBRARY glog REQUIRED)
  set(GLOG_LIBS ${GLOG_LIBRARY})
  message(STATUS "flexmoe: LibTorch uses glog: linking ${GLOG_LIBRARY}")
else()
  message(STATUS "flexmoe: LibTorch without glog: experts/ CHECKs use c10's (glog shim)")
endif()

# experts/cpu_blas.cc calls the Fortran BLAS (sgemm_, dgemm_), for CPU tensors only (never on
# the CUDA path measured here). From a system BLAS, else from LibTorch itself (the x86 pip
# wheels export MKL's), else from blas_fallback.cc (plain loops) written next to this file.
option(FLEXMOE_NO_SYSTEM_BLAS "Do not look for a system BLAS (to test the other two)" OFF)
set(BLAS_LIBS)
set(BLAS_FALLBACK)
if(NOT FLEXMOE_NO_SYSTEM_BLAS)
  find_library(FLEXMOE_BLAS_LIBRARY NAMES libblas.so.3 blas openblas)
endif()
if(FLEXMOE_BLAS_LIBRARY)
  set(BLAS_LIBS ${FLEXMOE_BLAS_LIBRARY})
  message(STATUS "flexmoe: BLAS for experts/cpu_blas.cc: ${FLEXMOE_BLAS_LIBRARY}")
else()
  find_library(FLEXMOE_TORCH_CPU_LIBRARY torch_cpu
    HINTS ${TORCH_LIB_DIR} ${TORCH_INSTALL_PREFIX}/lib NO_CACHE)
  find_library(FLEXMOE_C10_LIBRARY c10 HINTS ${TORCH_LIB_DIR} ${TORCH_INSTALL_PREFIX}/lib NO_CACHE)
  set(FLEXMOE_TORCH_BLAS OFF)
  if(FLEXMOE_TORCH_CPU_LIBRARY AND FLEXMOE_C10_LIBRARY)
    include(CheckFunctionExists)
    get_filename_component(_torch_lib_dir ${FLEXMOE_TORCH_CPU_LIBRARY} DIRECTORY)
    set(CMAKE_REQUIRED_LIBRARIES ${FLEXMOE_TORCH_CPU_LIBRARY} ${FLEXMOE_C10_LIBRARY}
      -Wl,-rpath-link,${_torch_lib_dir})
    check_function_exists(sgemm_ FLEXMOE_TORCH_HAS_SGEMM)
    check_function_exists(dgemm_ FLEXMOE_TORCH_HAS_DGEMM)
    unset(CMAKE_REQUIRED_LIBRARIES)
    if(FLEXMOE_TORCH_HAS_SGEMM AND FLEXMOE_TORCH_HAS_DGEMM)
      set(FLEXMOE_TORCH_BLAS ON)
    endif()
  endif()
  if(FLEXMOE_TORCH_BLAS)
    set(BLAS_LIBS ${FLEXMOE_TORCH_CPU_LIBRARY})
    message(STATUS "flexmoe: BLAS for experts/cpu_blas.cc: ${FLEXMOE_TORCH_CPU_LIBRARY}'s")
  else()
    set(BLAS_FALLBACK ${CMAKE_CURRENT_SOURCE_DIR}/blas_fallback.cc)
    message(STATUS "flexmoe: BLAS for experts/cpu_blas.cc: none found, plain-loop fallback")
  endif()
endif()

set(R ${FLEXMOE_ROOT})
add_library(flexmoe_cluster_gpu
  ${R}/cluster/base/error.cc ${R}/cluster/comm/deadline.cc ${R}/cluster/comm/split_check.cc
  ${R}/cluster/comm/self_communicator.cc ${R}/cluster/comm/process_groups.cc
  ${R}/cluster/comm/nccl_communicator.cc)
target_include_directories(flexmoe_cluster_gpu PUBLIC ${R})
target_include_directories(flexmoe_cluster_gpu PRIVATE ${NCCL_INCLUDE_DIR} ${CUDART_INCLUDE_DIR})
target_link_libraries(flexmoe_cluster_gpu
  PUBLIC ${TORCH_LIBRARIES} ${NCCL_LIBRARY} ${CUDART_LIBRARY})
target_compile_definitions(flexmoe_cluster_gpu PUBLIC FLEXMOE_HAVE_NCCL=1)
# Every experts/*.cc, as experts/CMakeLists.txt builds them.
file(GLOB EXPERTS_SOURCES ${R}/experts/*.cc)
add_library(flexmoe_experts_gpu ${EXPERTS_SOURCES} ${BLAS_FALLBACK})
target_include_directories(flexmoe_experts_gpu BEFORE PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/glog_shim)
target_link_libraries(flexmoe_experts_gpu PUBLIC flexmoe_cluster_gpu ${GLOG_LIBS} ${BLAS_LIBS})
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
add_executable(moe_layer_gpu_bench ${R}/bench/moe_layer_gpu_bench.cc)
target_include_directories(moe_layer_gpu_bench PRIVATE ${CUDART_INCLUDE_DIR})
target_link_libraries(moe_layer_gpu_bench PRIVATE flexmoe_experts_gpu)
enable_testing()
add_test(NAME cluster_nccl_test COMMAND cluster_nccl_test --gtest_filter=-*Deadline*)
add_test(NAME cluster_nccl_deadline_test COMMAND cluster_nccl_test --gtest_filter=*Deadline*)
set_tests_properties(cluster_nccl_test cluster_nccl_deadline_test PROPERTIES
  LABELS gpu TIMEOUT 180)
CMAKE
}

# Configures the standalone project in $1 into $2 and builds the test and the bench; the
# remaining arguments go to cmake's configure step.
build_standalone() {
  local src="$1" out="$2"
  shift 2
  say "configuring ${out}"
  cmake -S "${src}" -B "${out}" ${GENERATOR[@]+"${GENERATOR[@]}"} -DFLEXMOE_ROOT="${REPO}" \
    -DGTEST_SRC="${GTEST_SRC}" -DCUDAToolkit_ROOT="${CUDA_HOME_FOUND}" "$@" &&
    say "building cluster_nccl_test moe_layer_gpu_bench (-j${JOBS})" &&
    cmake --build "${out}" --target cluster_nccl_test moe_layer_gpu_bench -j"${JOBS}"
}

# The libraries a binary resolves to (torch, CUDA, NCCL, glog), for the log.
show_libs() {
  command -v ldd >/dev/null || return 0
  say "$(basename "$1") resolves:"
  ldd "$1" 2>&1 | grep -E 'lib(torch|c10|cuda|nccl|glog|blas|openblas|mkl|gomp)[^ ]* =>|not found' |
    sed 's/^\s*/[gpu_check]     /' || true
}

# Runs the bench once per configuration; 0 when every run measured.
run_benches() {
  local bench="$1" status=0 args rc
  local runs=("${BENCH_RUNS[@]}")
  if [[ -n "${BENCH_ARGS:-}" ]]; then runs+=("${BENCH_ARGS}"); fi
  for args in "${runs[@]}"; do
    say "bench: $(basename "${bench}") ${args}  (timeout ${BENCH_TIMEOUT_S} s)"
    rc=0
    # shellcheck disable=SC2086  # args is a list of flags
    timeout -k 10 "${BENCH_TIMEOUT_S}" "${bench}" ${args} || rc=$?
    if ((rc == 0)); then
      say "bench: ok"
    else
      say "bench: FAILED (exit ${rc}$( ((rc == 124 || rc == 137)) && echo ', timed out'))"
      status=1
    fi
  done
  return "${status}"
}

main() {
  say "started $(date -u '+%Y-%m-%d %H:%M:%S UTC') in ${REPO}"
  if command -v git >/dev/null && git -C "${REPO}" rev-parse HEAD >/dev/null 2>&1; then
    local dirty=""
    git -C "${REPO}" diff --quiet HEAD 2>/dev/null || dirty=" (+ uncommitted changes)"
    say "commit $(git -C "${REPO}" rev-parse --short HEAD)${dirty}"
  fi
  unpack_debs
  detect
  report_machine
  if ((${#MISSING[@]} > 0)); then
    say "missing: ${MISSING[*]}"
    say "see the header of bench/gpu_check.sh for how to carry .deb files in .dev/debs/"
    exit 2
  fi
  if [[ -n "${CHECK_ONLY:-}" ]]; then
    say "CHECK_ONLY set: not building"
    exit 0
  fi
  # Torch's CMake would otherwise detect the GPU's architecture with an nvcc test program;
  # nothing here is compiled by nvcc: device 0's capability is enough.
  if [[ -z "${TORCH_CUDA_ARCH_LIST:-}" ]]; then
    local arch
    if arch="$("${PY}" -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability(0))' \
      2>/dev/null)"; then
      export TORCH_CUDA_ARCH_LIST="${arch}"
      say "TORCH_CUDA_ARCH_LIST=${arch} (device 0)"
    fi
  fi
  export NCCL_DEBUG="${NCCL_DEBUG:-WARN}"
  local prefix="${TORCH_PREFIX};${DEV_ROOT}/usr"
  local cuda_defs=(-DNCCL_INCLUDE_DIR="${NCCL_ROOT}/include" -DNCCL_LIBRARY="${NCCL_LIB}"
    -DCUDART_INCLUDE_DIR="${CUDART_ROOT}/include" -DCUDART_LIBRARY="${CUDART_LIB}")
  local dir test_bin bench_bin
  JOBS="$(nproc)"
  if ((FULL_READY)); then
    say "mode: full project build in ${BUILD}"
    dir="${BUILD}"
    say "configuring"
    cmake -S "${REPO}" -B "${dir}" ${GENERATOR[@]+"${GENERATOR[@]}"} \
      -DCMAKE_PREFIX_PATH="${prefix}" "${cuda_defs[@]}"
    say "building cluster_nccl_test cluster_mpi_test moe_layer_gpu_bench (-j${JOBS})"
    cmake --build "${dir}" --target cluster_nccl_test cluster_mpi_test moe_layer_gpu_bench \
      -j"${JOBS}"
    test_bin="${dir}/tests/cluster_nccl_test"
    bench_bin="${dir}/bench/moe_layer_gpu_bench"
  else
    local src="${BUILD}/standalone"
    say "mode: standalone (NCCL tests + MoE layer bench) in ${src}"
    write_standalone_project "${src}"
    dir="${src}/build"
    say "LibTorch through find_package(Torch) (prefix ${TORCH_PREFIX})"
    if ! build_standalone "${src}" "${dir}" -DCMAKE_PREFIX_PATH="${prefix}" "${cuda_defs[@]}"
    then
      say "the find_package(Torch) build FAILED (see above); building again with torch's" \
        "include/ and lib/ used directly"
      dir="${src}/build-direct"
      build_standalone "${src}" "${dir}" -DFLEXMOE_TORCH_MANUAL=ON \
        -DTORCH_INCLUDE_ROOT="${TORCH_PKG}/include" -DTORCH_LIB_DIR="${TORCH_PKG}/lib" \
        -DTORCH_ABI="${TORCH_ABI}" -DCMAKE_PREFIX_PATH="${DEV_ROOT}/usr" "${cuda_defs[@]}"
    fi
    test_bin="${dir}/cluster_nccl_test"
    bench_bin="${dir}/moe_layer_gpu_bench"
  fi
  show_libs "${test_bin}"
  show_libs "${bench_bin}"

  say "running the gpu tests (ctest -L gpu -V in ${dir})"
  local status=0 log="${dir}/gpu_check_ctest.log"
  if ! (cd "${dir}" && ctest -L gpu -V --output-on-failure) 2>&1 | tee "${log}"; then
    say "gpu tests FAILED"
    status=1
  elif grep -q '\[  SKIPPED \]' "${log}"; then
    say "gpu tests SKIPPED (see the reason above): counted as a failure"
    status=1
  elif ! grep -q '\[  PASSED  \]' "${log}"; then
    say "gpu tests: no gtest PASSED line in the output: counted as a failure"
    status=1
  else
    say "gpu tests passed"
  fi

  say "running the MoE layer benchmark"
  if run_benches "${bench_bin}"; then
    say "bench runs ok"
  else
    say "bench runs FAILED"
    status=1
  fi
  if ((status == 0)); then
    say "RESULT: OK (gpu tests passed, every bench run measured)"
  else
    say "RESULT: FAILED (see the lines marked FAILED above)"
  fi
  exit "${status}"
}

main "$@"
