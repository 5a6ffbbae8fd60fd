#!/usr/bin/env bash
# gpu_debs.sh: fetches, on a Debian 12 machine with network, the .deb files of the project's
# build and run dependencies that a GPU machine without Debian packages lacks, into
# .dev/debs/ (git-ignored), for bench/gpu_check.sh there (carry ".dev"). Nothing is
# installed. About 30 MB.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "${REPO}/.dev/debs"
cd "${REPO}/.dev/debs"
PACKAGES=(
  # protobuf, glog, GoogleTest, JSON, zlib, Boost.Asio (headers)
  libprotobuf-dev libprotobuf32 protobuf-compiler libprotoc32
  libgoogle-glog-dev libgoogle-glog0v6 libgflags-dev libgflags2.2 libunwind8 libunwind-dev
  libgtest-dev googletest nlohmann-json3-dev zlib1g-dev libboost-dev libboost1.74-dev
  # Open MPI and what it loads
  libopenmpi-dev libopenmpi3 openmpi-bin openmpi-common libhwloc15 libhwloc-plugins
  libevent-core-2.1-7 libevent-pthreads-2.1-7 libevent-2.1-7 libpmix2 libfabric1 libucx0
  libibverbs1 librdmacm1 libpsm2-2 libpsm-infinipath1 libnuma1 libxnvctrl0 libmunge2
  # the BLAS experts/cpu_blas.cc calls on host tensors
  libopenblas0-pthread libopenblas0 libblas3 libgfortran5 libquadmath0
)
apt-get download "${PACKAGES[@]}"
echo "gpu_debs: $(ls -1 ./*.deb | wc -l) files, $(du -sh . | cut -f1) in .dev/debs"
