# Sourced by run.sh and the benchmark scripts (not by the tests): when OpenBLAS does not
# recognise this CPU (it reports the generic "Prescott" core on some virtual machines) but
# the CPU has AVX-512 or AVX2, name the matching kernel set. GEMM runs 3-4x faster.
# An OPENBLAS_CORETYPE already set is left alone.
if [ -z "${OPENBLAS_CORETYPE:-}" ] && [ -x build/flexmoe ]; then
  core=$(OPENBLAS_VERBOSE=2 build/flexmoe help 2>&1 | sed -n 's/^Core: //p' | head -n 1)
  if [ "$core" = "Prescott" ]; then
    if grep -q -w avx512f /proc/cpuinfo; then
      export OPENBLAS_CORETYPE=SkylakeX
    elif grep -q -w avx2 /proc/cpuinfo; then
      export OPENBLAS_CORETYPE=Haswell
    fi
    [ -n "${OPENBLAS_CORETYPE:-}" ] && echo "blas: OpenBLAS saw a generic CPU; using OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE"
  fi
fi
