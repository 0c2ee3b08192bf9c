#!/usr/bin/env bash
# The whole test suite under each OpenBLAS kernel family a user's CPU may pick (AVX2: Haswell,
# Zen; AVX-512: SkylakeX; and the machine's own choice), and once more with numpy's own AVX-512
# loops switched off as on an AVX2 laptop. Run from the repository root in the project's venv:
#     bash tools/test_kernels.sh [pytest args...]       (about 5 x the suite's time)
# A kernel the CPU lacks is refused by OpenBLAS and falls back: each run prints the kernel used.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
run() {
  local label=$1; shift
  local kernel
  kernel=$(env "$@" python -c "import threadpoolctl, numpy; print(next(i.get('architecture') for i in threadpoolctl.threadpool_info() if i['internal_api'] == 'openblas'))" 2>/dev/null || echo "?")
  echo "== $label (OpenBLAS kernel: $kernel)"
  env "$@" python -m pytest -q -n auto -p no:cacheprovider "${ARGS[@]}" 2>&1 | tail -1
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
}
ARGS=("$@")
run "OPENBLAS_CORETYPE=Haswell" OPENBLAS_CORETYPE=Haswell
run "OPENBLAS_CORETYPE=Zen" OPENBLAS_CORETYPE=Zen
run "OPENBLAS_CORETYPE=SkylakeX" OPENBLAS_CORETYPE=SkylakeX
run "OPENBLAS_CORETYPE unset" -u OPENBLAS_CORETYPE
run "Haswell + numpy without AVX-512" OPENBLAS_CORETYPE=Haswell "NPY_DISABLE_CPU_FEATURES=X86_V4 AVX512_ICL AVX512_SPR"
exit $status
