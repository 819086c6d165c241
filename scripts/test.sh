#!/usr/bin/env bash
# scripts/test.sh: run the whole test suite (every tier) in .venv; `make test` runs setup first.
# Extra arguments go to pytest, e.g. scripts/test.sh -m 'not notebook' -x
#
# Exit status is pytest's, except that 5 ("no tests collected") counts as a failure:
# `make test` is meant to run the whole suite, so collecting nothing means the suite
# was not found or a selection matched nothing, and a green run that tested nothing
# would prove nothing. The project always has tests, so CI never sees 5 spuriously.
set -uo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/pytest ] || { echo "[test] ERROR: .venv/bin/pytest not found. Next step: run 'make test' (it sets up first) or 'make setup'." >&2; exit 1; }
# The second-kernel tier (tests/kernel2, marker kernel2) boots Debian's stock kernel under QEMU
# (software emulation) once and runs the kprobe/fentry/LSM parts inside: about 11 minutes on an
# idle machine (646-699 s measured; see the README, "A second kernel"). It is part of the whole
# suite; EBPF_LAB_KERNEL2=0 leaves it out (then `make test-kernels` runs it alone). A -m of your
# own overrides this default.
select=()
[ "${EBPF_LAB_KERNEL2:-1}" = 0 ] && select=(-m "not kernel2")
echo "[test] .venv/bin/pytest ${select[*]} $*  (kernel $(uname -r), CI=${CI:-})"
.venv/bin/pytest "${select[@]}" "$@"
rc=$?
if [ "$rc" = 5 ]; then
  echo "[test] ERROR: pytest collected no tests. Likely cause: the tests/ directory is missing or your -m/-k selection matched nothing. Next step: run '.venv/bin/pytest --collect-only -q' to see what is there." >&2
  exit 1
fi
exit "$rc"
