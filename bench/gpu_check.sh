#!/usr/bin/env bash
# gpu_check.sh: the GPU checks of docs/gpu.md, in one script for one call of the device tool.
# It builds the whole project with its own CMake against the CUDA LibTorch of the machine's
# PyTorch (-DFLEXMOE_TORCH_DIR=<torch>/share/cmake/Torch), then:
#   1. the unit tests, with a CUDA device visible (ctest -LE "system|slow"), and the NCCL
#      communicator tests (ctest -L gpu);
#   2. `flexmoe train` on the quickstart config for 3 epochs on the CPU and on the GPU: the
#      per-epoch losses must agree within 1e-3 relative (fp32 matmuls, TF32 off: LibTorch's
#      default for matmuls, and nothing here turns it on);
#   3. the MoE layer benchmark (bench/moe_layer_gpu_bench.cc: the padded batched-GEMM layer,
#      the same layer with one GEMM pair per expert as the same run's "before", a dense FFN);
#   4. ADNI-like training samples/s on one GPU and on the CPU (flexmoe train's own figure).
# Everything it prints also goes to $OUT/gpu_check.log when OUT is set (the device tool).
#
# Usage, from the repository root or anywhere:
#   bench/gpu_check.sh                  # all of it
#   CHECK_ONLY=1 bench/gpu_check.sh     # only report what is found and what is missing
#   CPU_DRY_RUN=1 GPU_CHECK_BUILD=build bench/gpu_check.sh
#                                       # the same steps on the CPU with an existing build
#                                       # (Debian's LibTorch), to test this script without a GPU
#   PYTHON=/path/to/python              # the Python whose torch to use (default: python3)
#   GPU_CHECK_BUILD=DIR                 # build directory (default build-gpu/)
#
# The machine has PyTorch, nvcc, cmake and ninja but no Debian packages and no network: the
# project's other dependencies travel as .deb files in .dev/debs/ (git-ignored), fetched on a
# Debian 12 machine with network by bench/gpu_debs.sh; pass ".dev" in the device tool's
# `carry`. Each .deb is unpacked with `dpkg -x` (or ar + tar) into .dev/root/; nothing is
# installed system-wide.
#
# Exit status: 0 when every check passed, 1 when one failed, 2 when something is missing.
set -Eeuo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${GPU_CHECK_BUILD:-${REPO}/build-gpu}"
[[ "${BUILD}" = /* ]] || BUILD="${REPO}/${BUILD}"
DEV_ROOT="${REPO}/.dev/root"
MULTIARCH="$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)"
WORK="${OUT:-${BUILD}/gpu_check}"
MISSING=()
FAILED=()
if [[ -n "${OUT:-}" ]]; then exec > >(tee -a "${OUT}/gpu_check.log") 2>&1; fi

say() { printf '[gpu_check] %s\n' "$*"; }
found() { printf '[gpu_check]   %-14s %s\n' "$1" "$2"; }
missing() {
  printf '[gpu_check]   %-14s MISSING: %s\n' "$1" "$2"
  MISSING+=("$1")
}
check_failed() {
  say "FAILED: $*"
  FAILED+=("$1")
}
trap 'say "error (exit $?) at line ${LINENO}: ${BASH_COMMAND}"' ERR

# --- carried .deb files ----------------------------------------------------------------------
unpack_debs() {
  local debs=("${REPO}"/.dev/debs/*.deb)
  [[ -e "${debs[0]}" ]] || return 0
  mkdir -p "${DEV_ROOT}"
  local deb stamp tmp
  for deb in "${debs[@]}"; do
    stamp="${DEV_ROOT}/.unpacked-$(basename "${deb}")"
    [[ -e "${stamp}" ]] && continue
    if command -v dpkg >/dev/null; then
      dpkg -x "${deb}" "${DEV_ROOT}"
    else
      tmp="$(mktemp -d)"
      (cd "${tmp}" && ar x "${deb}" && tar -xf data.tar.* -C "${DEV_ROOT}")
      rm -rf "${tmp}"
    fi
    touch "${stamp}"
  done
  say "unpacked ${#debs[@]} .deb files into .dev/root"
  local usr="${DEV_ROOT}/usr" lib="${DEV_ROOT}/usr/lib/${MULTIARCH}"
  # Alternatives that dpkg -x does not make.
  [[ -e "${usr}/bin/mpirun" || ! -e "${usr}/bin/mpirun.openmpi" ]] ||
    ln -sf mpirun.openmpi "${usr}/bin/mpirun"
  [[ -e "${usr}/bin/mpicxx" || ! -e "${usr}/bin/mpicxx.openmpi" ]] ||
    ln -sf mpicxx.openmpi "${usr}/bin/mpicxx"
  [[ -e "${lib}/libblas.so.3" || ! -e "${lib}/openblas-pthread/libblas.so.3" ]] ||
    ln -sf openblas-pthread/libblas.so.3 "${lib}/libblas.so.3"
  export PATH="${usr}/bin:${PATH}"
  export LD_LIBRARY_PATH="${lib}:${lib}/openmpi/lib:${lib}/openblas-pthread${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}"
  # Open MPI, relocated: its components and help files under .dev/root/usr.
  export OPAL_PREFIX="${usr}"
  export CMAKE_PREFIX_PATH="${usr}${CMAKE_PREFIX_PATH:+;${CMAKE_PREFIX_PATH}}"
}

# First directory among the arguments that holds the relative path $1.
find_in() {
  local rel="$1" dir
  shift
  for dir in "$@"; do
    if [[ -n "${dir}" && -e "${dir}/${rel}" ]]; then
      echo "${dir}"
      return 0
    fi
  done
  return 1
}

report_machine() {
  say "machine: $(uname -srm); $(getconf _NPROCESSORS_ONLN) cores; $(free -g 2>/dev/null | awk '/^Mem:/ {print $2 " GiB"}')"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv,noheader 2>&1 |
      sed 's/^/[gpu_check]   gpu: /' || true
  fi
  say "c++: $( (c++ --version || g++ --version) 2>/dev/null | head -1)"
  [[ -z "${PY:-}" ]] || "${PY}" - <<'PY' 2>&1 | sed 's/^/[gpu_check]   /' || true
import torch
print("torch", torch.__version__, "| CUDA", torch.version.cuda, "| CXX11 ABI",
      int(torch._C._GLIBCXX_USE_CXX11_ABI), "| devices", torch.cuda.device_count())
PY
}

detect() {
  say "looking for the build's dependencies"
  PY=""
  local candidate
  for candidate in ${PYTHON:-} python3 python; do
    if command -v "${candidate}" >/dev/null && "${candidate}" -c 'import torch' 2>/dev/null; then
      PY="$(command -v "${candidate}")"
      break
    fi
  done
  for tool in cmake ninja; do
    if ! command -v "${tool}" >/dev/null && [[ -n "${PY}" ]]; then
      local bin
      bin="$("${PY}" -c "import ${tool}, os; print(getattr(${tool}, 'CMAKE_BIN_DIR', None) or ${tool}.BIN_DIR)" 2>/dev/null)" &&
        PATH="${bin}:${PATH}"
    fi
    if command -v "${tool}" >/dev/null; then found "${tool}" "$(command -v "${tool}")"; else missing "${tool}" "not on PATH"; fi
  done
  command -v c++ >/dev/null && found "c++" "$(command -v c++)" || missing "c++" "no C++ compiler"
  TORCH_DIR=""
  if [[ -n "${CPU_DRY_RUN:-}" ]]; then
    found torch "dry run: the build's own LibTorch (${BUILD})"
  elif [[ -n "${PY}" ]]; then
    TORCH_DIR="$("${PY}" -c 'import torch; print(torch.utils.cmake_prefix_path)')/Torch"
    local cuda
    cuda="$("${PY}" -c 'import torch; print(torch.version.cuda or "")')"
    if [[ -z "${cuda}" ]]; then
      missing torch "${PY}'s torch is a CPU build"
    else
      found torch "${TORCH_DIR} (CUDA ${cuda})"
    fi
  else
    missing torch "no python with torch (set PYTHON)"
  fi
  # CUDA runtime and NCCL: the toolkit's, else the wheels next to torch.
  local site="" cuda_home="${CUDA_HOME:-/usr/local/cuda}"
  [[ -z "${PY}" ]] || site="$("${PY}" -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))')"
  CUDA_ROOT="$(find_in include/cuda_runtime_api.h "${cuda_home}" "${site:+${site}/nvidia/cu13}" \
    "${site:+${site}/nvidia/cuda_runtime}" || true)"
  NCCL_ROOT="$(find_in include/nccl.h "${cuda_home}" "${site:+${site}/nvidia/nccl}" /usr || true)"
  NCCL_LIB=""
  [[ -z "${NCCL_ROOT}" ]] || NCCL_LIB="$(find -L "${NCCL_ROOT}" -maxdepth 3 -name 'libnccl.so*' 2>/dev/null | sort | head -1)"
  [[ -n "${CUDA_ROOT}" ]] && found cuda "${CUDA_ROOT}" || say "  cuda runtime headers not found (NCCL backend off)"
  [[ -n "${NCCL_LIB}" ]] && found nccl "${NCCL_LIB}" || say "  nccl not found (NCCL backend off)"
  # The project's Debian dependencies (carried or installed).
  local inc=("${DEV_ROOT}/usr/include" /usr/include "${DEV_ROOT}/usr/lib/${MULTIARCH}/openmpi/include"
    "/usr/lib/${MULTIARCH}/openmpi/include")
  local pair
  for pair in protobuf:google/protobuf/message.h glog:glog/logging.h gtest:gtest/gtest.h \
    nlohmann_json:nlohmann/json.hpp zlib:zlib.h boost:boost/asio.hpp mpi:mpi.h; do
    if find_in "${pair#*:}" "${inc[@]}" >/dev/null; then found "${pair%%:*}" ok; else
      missing "${pair%%:*}" "${pair#*:} (carry it: bench/gpu_debs.sh)"
    fi
  done
  command -v protoc >/dev/null && found protoc "$(command -v protoc)" || missing protoc "not on PATH"
  command -v mpirun >/dev/null && found mpirun "$(command -v mpirun)" || missing mpirun "not on PATH"
}

configure_and_build() {
  if [[ -n "${CPU_DRY_RUN:-}" ]]; then
    say "dry run: building ${BUILD} as it is configured"
    cmake --build "${BUILD}" -j"$(getconf _NPROCESSORS_ONLN)"
    return
  fi
  local defs=(-DFLEXMOE_TORCH_DIR="${TORCH_DIR}" -DCMAKE_BUILD_TYPE=Release)
  [[ -z "${CUDA_ROOT}" ]] || defs+=(-DFLEXMOE_CUDA_ROOT="${CUDA_ROOT}"
    -DCUDART_INCLUDE_DIR="${CUDA_ROOT}/include")
  [[ -z "${NCCL_LIB}" ]] || defs+=(-DNCCL_INCLUDE_DIR="${NCCL_ROOT}/include" -DNCCL_LIBRARY="${NCCL_LIB}")
  # Torch's CMake would otherwise probe the GPU's architecture with nvcc; nothing here is
  # compiled by nvcc.
  if [[ -z "${TORCH_CUDA_ARCH_LIST:-}" ]]; then
    TORCH_CUDA_ARCH_LIST="$("${PY}" -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability(0))' 2>/dev/null || echo 9.0)"
    export TORCH_CUDA_ARCH_LIST
  fi
  say "configuring ${BUILD} (the project's CMake, TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST})"
  cmake -S "${REPO}" -B "${BUILD}" -G Ninja "${defs[@]}"
  say "building (-j$(getconf _NPROCESSORS_ONLN))"
  cmake --build "${BUILD}" -j"$(getconf _NPROCESSORS_ONLN)"
}

# Step 1: unit tests with the device visible, and the NCCL tests.
run_unit_tests() {
  say "unit tests (ctest -LE 'system|slow|gpu')"
  (cd "${BUILD}" && ctest -LE 'system|slow|gpu' --output-on-failure --timeout 300) ||
    check_failed unit-tests "ctest -LE system|slow|gpu"
  [[ -n "${CPU_DRY_RUN:-}" ]] && return
  local log="${WORK}/nccl_ctest.log"
  say "NCCL tests (ctest -L gpu)"
  if ! (cd "${BUILD}" && ctest -L gpu -V --output-on-failure --timeout 180) >"${log}" 2>&1; then
    tail -40 "${log}"
    check_failed nccl-tests "ctest -L gpu"
  elif grep -q '\[  SKIPPED \]' "${log}"; then
    check_failed nccl-tests "skipped (see ${log})"
  else
    say "NCCL tests passed"
  fi
}

# Per-epoch train_loss values of a run's metrics.jsonl, one per line.
epoch_losses() {
  "${PY:-python3}" -c '
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("event") == "epoch":
        print(repr(r["train_loss"]))' "$1"
}

# The last epoch's samples_per_s of a run's metrics.jsonl.
epoch_rate() {
  "${PY:-python3}" -c '
import json, sys
rates = [json.loads(l).get("samples_per_s") for l in open(sys.argv[1])
         if json.loads(l).get("event") == "epoch"]
print(rates[-1] if rates else "none")' "$1"
}

# flexmoe train with `device` ($1), into run dir $2; the remaining arguments are passed on.
train_on() {
  local device="$1" dir="$2"
  shift 2
  rm -rf "${dir}"
  "${BUILD}/flexmoe" train --workers 1 --set training.device="${device}" --set run.dir="${dir}" "$@"
}

# Step 2: quickstart, 3 epochs, CPU against GPU.
compare_quickstart() {
  local config="${REPO}/configs/quickstart.textproto" gpu=CUDA
  [[ -z "${CPU_DRY_RUN:-}" ]] || gpu=CPU
  say "quickstart: synth + prepare into ${WORK}/quickstart-data"
  local data="${WORK}/quickstart-data" sets=()
  sets=(--set data.prepared_dir="${data}/prepared" --set data.input="${data}/raw")
  "${BUILD}/flexmoe" synth --config "${config}" "${sets[@]}" >/dev/null
  "${BUILD}/flexmoe" prepare --config "${config}" "${sets[@]}" >/dev/null
  local common=(--config "${config}" --threads 4 "${sets[@]}" --set training.epochs=3)
  train_on CPU "${WORK}/quickstart-cpu" "${common[@]}" >"${WORK}/quickstart-cpu.log" 2>&1 ||
    { tail -20 "${WORK}/quickstart-cpu.log"; check_failed quickstart "the CPU run failed"; return; }
  train_on "${gpu}" "${WORK}/quickstart-gpu" "${common[@]}" >"${WORK}/quickstart-gpu.log" 2>&1 ||
    { tail -20 "${WORK}/quickstart-gpu.log"; check_failed quickstart "the ${gpu} run failed"; return; }
  grep -m1 '^device:' "${WORK}/quickstart-gpu.log" | sed 's/^/[gpu_check]   /' || true
  local cpu_losses gpu_losses
  cpu_losses="$(epoch_losses "${WORK}/quickstart-cpu/metrics.jsonl")"
  gpu_losses="$(epoch_losses "${WORK}/quickstart-gpu/metrics.jsonl")"
  say "per-epoch train_loss, CPU: $(echo ${cpu_losses})"
  say "per-epoch train_loss, ${gpu}: $(echo ${gpu_losses})"
  if "${PY:-python3}" -c '
import sys
a = [float(x) for x in sys.argv[1].split()]
b = [float(x) for x in sys.argv[2].split()]
worst = max(abs(x - y) / max(abs(x), 1e-12) for x, y in zip(a, b)) if a and len(a) == len(b) else 1
print("[gpu_check]   largest relative difference %.3g (limit 1e-3) over %d epochs" % (worst, len(a)))
sys.exit(0 if len(a) == 3 and worst <= 1e-3 else 1)' "${cpu_losses}" "${gpu_losses}"; then
    say "quickstart: losses agree"
  else
    check_failed quickstart "the per-epoch losses differ by more than 1e-3 relative"
  fi
}

# Step 3: the MoE layer benchmark.
run_moe_bench() {
  local bench="${BUILD}/bench/moe_layer_gpu_bench" args extra=()
  [[ -z "${CPU_DRY_RUN:-}" ]] || extra=(--cpu_dry_run 1)
  if [[ ! -x "${bench}" ]]; then
    check_failed moe-bench "${bench} was not built (no NCCL found?)"
    return
  fi
  for args in "--tokens 4096 --dim 128 --experts 16 --top_k 4 --iters 50" \
    "--tokens 65536 --dim 512 --experts 16 --top_k 4 --iters 20"; do
    [[ -z "${CPU_DRY_RUN:-}" ]] || args="--tokens 512 --dim 32 --experts 16 --top_k 4 --iters 3"
    say "bench: moe_layer_gpu_bench ${args}"
    # shellcheck disable=SC2086
    timeout -k 10 240 "${bench}" ${args} "${extra[@]}" || check_failed moe-bench "${args}"
  done
}

# Step 4: ADNI-like training samples/s, GPU against CPU (2 epochs each).
adni_throughput() {
  local config="${REPO}/configs/adni_like.textproto" gpu=CUDA data="${WORK}/adni-data"
  [[ -z "${CPU_DRY_RUN:-}" ]] || gpu=CPU
  local sets=(--set data.prepared_dir="${data}/prepared" --set data.input="${data}/raw")
  "${BUILD}/flexmoe" synth --config "${config}" "${sets[@]}" >/dev/null
  "${BUILD}/flexmoe" prepare --config "${config}" "${sets[@]}" >/dev/null
  local common=(--config "${config}" "${sets[@]}" --set training.epochs=2 --set training.warmup_epochs=1)
  local threads
  threads="$(getconf _NPROCESSORS_ONLN)"
  train_on CPU "${WORK}/adni-cpu" "${common[@]}" --threads "${threads}" >"${WORK}/adni-cpu.log" 2>&1 ||
    { tail -20 "${WORK}/adni-cpu.log"; check_failed adni "the CPU run failed"; return; }
  train_on "${gpu}" "${WORK}/adni-gpu" "${common[@]}" --threads 4 >"${WORK}/adni-gpu.log" 2>&1 ||
    { tail -20 "${WORK}/adni-gpu.log"; check_failed adni "the ${gpu} run failed"; return; }
  say "ADNI-like samples/s (flexmoe train, last epoch): CPU (${threads} threads) $(epoch_rate "${WORK}/adni-cpu/metrics.jsonl"), ${gpu} $(epoch_rate "${WORK}/adni-gpu/metrics.jsonl")"
}

main() {
  say "started $(date -u '+%Y-%m-%d %H:%M:%S UTC'), commit $(git -C "${REPO}" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  unpack_debs
  detect
  report_machine
  if ((${#MISSING[@]} > 0)); then
    say "missing: ${MISSING[*]} (bench/gpu_debs.sh fetches the Debian ones into .dev/debs)"
    exit 2
  fi
  [[ -z "${CHECK_ONLY:-}" ]] || { say "CHECK_ONLY: not building"; exit 0; }
  mkdir -p "${WORK}"
  source "${REPO}/launch/blas_env.sh" 2>/dev/null || true
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
  export NCCL_DEBUG="${NCCL_DEBUG:-WARN}"
  configure_and_build
  run_unit_tests
  compare_quickstart
  run_moe_bench
  adni_throughput
  if ((${#FAILED[@]} == 0)); then
    say "RESULT: OK"
    exit 0
  fi
  say "RESULT: FAILED: ${FAILED[*]}"
  exit 1
}

main "$@"
