#!/usr/bin/env bash
# scripts/setup.sh: make this Debian 12 machine ready for ebpf-lab. Idempotent.
#
# Usage (as root, from anywhere):   scripts/setup.sh      (or: make setup)
#
# Steps, each skipped when already done, so a re-run takes a second or two:
#   1. distro packages (bpftrace, bcc, bpftool, headers, perf, strace, gcc...),
#      checked with dpkg-query; `apt-get update` runs once, only when something is missing
#   2. kernel headers for bcc: /lib/modules/$(uname -r)/{build,source}; when the running
#      kernel has none, Debian's 6.1 headers are linked in as a fallback (and we say so)
#   3. tracefs at /sys/kernel/tracing and debugfs at /sys/kernel/debug
#   4. .venv from Debian's /usr/bin/python3 (3.11), with ONLY Debian's bcc module linked in
#   5. `pip install -e '.[test]'`, skipped while a hash of pyproject.toml is unchanged
#   6. the Jupyter kernel "ebpf-lab" registered inside .venv
#   7. a final check: `import bcc, ebpf_lab` in .venv
#
# Environment: EBPF_LAB_EXTRA_PACKAGES="pkg1 pkg2" adds distro packages.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK=1

cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
START=$(date +%s.%N)

say()  { printf '[setup] %s\n' "$*"; }
warn() { printf '[setup] WARNING: %s\n' "$*" >&2; }
die()  { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# Distro packages. Add here what the tests or notebooks need.
PACKAGES=(
  bpftrace            # the bpftrace backend (0.17 on Debian 12)
  python3-bpfcc       # bcc's Python module, linked into .venv
  bpfcc-tools         # bcc's tools (execsnoop, opensnoop...) used for comparison in lessons
  bpftool             # inspect loaded programs and maps; the tests' leak check uses it
  linux-headers-amd64 # kernel headers bcc compiles against
  linux-perf          # `perf trace`, compared with eBPF in the benchmark
  strace              # compared with eBPF in the benchmark
  gcc make libc6-dev  # build the C workload helper (labload)
  python3 python3-venv python3-pip  # Debian's Python 3.11 for .venv
  ca-certificates     # pip over HTTPS
  procps iproute2     # ps, ss: used by lessons and tests
  chromium            # headless browser for tests/test_browser.py (JupyterLab end to end)
)
# shellcheck disable=SC2206
PACKAGES+=(${EBPF_LAB_EXTRA_PACKAGES:-})

# --- 0. preconditions ---------------------------------------------------------
if [ "$(id -u)" != 0 ]; then
  die "setup needs root (it installs packages and mounts tracefs); the lab itself runs probes as root too. Next step: run it again with sudo, e.g. 'sudo make lab'."
fi
if [ -r /etc/os-release ]; then
  # shellcheck disable=SC1091
  . /etc/os-release
  if [ "${ID:-}" != debian ] || [ "${VERSION_ID:-}" != 12 ]; then
    warn "this is ${PRETTY_NAME:-an unknown system}, not Debian 12: package names and versions may differ; carrying on."
  fi
fi
# one setup at a time per checkout (two `make test` started together must not both run pip)
LOCK=${TMPDIR:-/tmp}/ebpf-lab-setup-$(printf '%s' "$ROOT" | sha256sum | cut -c1-12).lock
exec 9>"$LOCK"
if ! flock -n 9; then
  say "another setup of $ROOT is running: waiting for it"
  flock 9
fi
command -v dpkg-query >/dev/null || die "dpkg-query not found: this script is written for Debian 12. Next step: install the packages listed in scripts/setup.sh by hand, then re-run."

# --- 1. distro packages -------------------------------------------------------
missing_packages() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || printf '%s\n' "$p"
  done
}
mapfile -t MISSING < <(missing_packages "${PACKAGES[@]}")
APT_UPDATED=0
apt_update_once() {
  if [ "$APT_UPDATED" = 0 ]; then
    say "apt-get update"
    apt-get update -q >/dev/null || die "apt-get update failed. Likely cause: no network or a broken /etc/apt/sources.list.d entry. Next step: run 'apt-get update' and fix what it reports."
    APT_UPDATED=1
  fi
}
if [ "${#MISSING[@]}" -gt 0 ]; then
  apt_update_once
  say "installing ${#MISSING[@]} package(s): ${MISSING[*]}"
  apt-get install -y -q "${MISSING[@]}" >/dev/null \
    || die "apt-get install failed for: ${MISSING[*]}. Next step: run 'apt-get install ${MISSING[*]}' and read its error."
else
  say "distro packages: all ${#PACKAGES[@]} present"
fi

# --- 2. kernel headers for bcc ------------------------------------------------
KREL=$(uname -r)
MODDIR=/lib/modules/$KREL
headers_ok() { [ -f "$MODDIR/build/Makefile" ] && [ -d "$MODDIR/build/include" ]; }
if ! headers_ok; then
  # a stock Debian kernel has a matching headers package: prefer it
  if [ ! -e "$MODDIR/build" ] && apt-cache show "linux-headers-$KREL" >/dev/null 2>&1; then
    say "installing linux-headers-$KREL (matches the running kernel)"
    apt_update_once
    apt-get install -y -q "linux-headers-$KREL" >/dev/null || warn "could not install linux-headers-$KREL"
  fi
fi
MATCHING=0
if headers_ok; then
  if [ ! -L "$MODDIR/build" ] || [[ "$(readlink -f "$MODDIR/build")" == *"$KREL"* ]]; then MATCHING=1; fi
fi
if [ "$MATCHING" = 1 ]; then
  say "kernel headers: $MODDIR/build matches the running kernel"
else
  FB_BUILD=$(find /usr/src -maxdepth 1 -name 'linux-headers-*-amd64' -type d 2>/dev/null | sort -V | tail -1)
  FB_COMMON=${FB_BUILD%-amd64}-common
  [ -n "$FB_BUILD" ] && [ -d "$FB_COMMON" ] \
    || die "no kernel headers for $KREL and no Debian headers in /usr/src to fall back on. Next step: 'apt-get install linux-headers-amd64', then re-run."
  if [ "$(readlink "$MODDIR/build" 2>/dev/null)" != "$FB_BUILD" ] || [ "$(readlink "$MODDIR/source" 2>/dev/null)" != "$FB_COMMON" ]; then
    mkdir -p "$MODDIR"
    ln -sfn "$FB_BUILD" "$MODDIR/build"
    ln -sfn "$FB_COMMON" "$MODDIR/source"
    say "linked $MODDIR/build -> $FB_BUILD and source -> $FB_COMMON"
  fi
  FB_VER=${FB_BUILD#/usr/src/linux-headers-}; FB_VER=${FB_VER%-amd64}
  say "NOTE: no headers for $KREL; using Debian's $FB_VER headers as a fallback: fine for tracepoints, struct offsets may be wrong (bcc C code that walks kernel structs can read wrong fields)."
fi

# --- 3. tracefs and debugfs ---------------------------------------------------
is_mounted() { awk -v m="$1" '$2 == m { found = 1 } END { exit !found }' /proc/self/mounts; }
mount_if_needed() { # type dir
  if is_mounted "$2"; then return; fi
  mkdir -p "$2" 2>/dev/null || true
  if mount -t "$1" nodev "$2" 2>/dev/null; then
    say "mounted $1 at $2"
  else
    die "could not mount $1 at $2. Likely cause: the kernel lacks $1 or this container may not mount. Next step: 'mount -t $1 nodev $2' as root on the host."
  fi
}
mount_if_needed tracefs /sys/kernel/tracing
mount_if_needed debugfs /sys/kernel/debug

# --- 4. the virtual environment -----------------------------------------------
PY=/usr/bin/python3
[ -x "$PY" ] || die "$PY not found. Next step: 'apt-get install python3 python3-venv'."
venv_ok() {
  [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys; assert sys.version_info[:2] == (3, 11) and sys.prefix != sys.base_prefix' 2>/dev/null \
    && grep -q '^home = /usr/bin$' "$VENV/pyvenv.cfg" 2>/dev/null \
    && grep -q '^include-system-site-packages = false$' "$VENV/pyvenv.cfg"  # only bcc gets in, by a link
}
if ! venv_ok; then
  if [ -e "$VENV" ]; then
    warn "$VENV is broken or not made from $PY 3.11: making it again"
    rm -rf "$VENV"
  fi
  say "creating $VENV from $PY ($("$PY" --version 2>&1))"
  "$PY" -m venv "$VENV" || die "'$PY -m venv' failed. Next step: 'apt-get install python3-venv', then re-run."
fi
SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
BCC_SRC=/usr/lib/python3/dist-packages/bcc
[ -d "$BCC_SRC" ] || die "$BCC_SRC not found. Next step: 'apt-get install python3-bpfcc'."
if [ "$(readlink "$SITE/bcc" 2>/dev/null)" != "$BCC_SRC" ]; then
  rm -rf "${SITE:?}/bcc"
  ln -s "$BCC_SRC" "$SITE/bcc"
  say "linked Debian's bcc into .venv: $SITE/bcc -> $BCC_SRC"
fi

# --- 5. Python dependencies ---------------------------------------------------
STAMP=$VENV/.ebpf-lab-installed
WANT=$( { cat pyproject.toml; echo "$ROOT"; } | sha256sum | cut -d' ' -f1)
if [ "$(cat "$STAMP" 2>/dev/null)" = "$WANT" ] && "$VENV/bin/python" -c 'import ebpf_lab, pytest, ipykernel' 2>/dev/null; then
  say "Python dependencies: up to date with pyproject.toml"
else
  say "pip install -e '.[test]' (this takes a minute the first time)"
  rm -f "$STAMP"
  "$VENV/bin/pip" install -q --progress-bar off -e '.[test]' \
    || die "pip install failed. Likely cause: no network to the package index, or a dependency conflict. Next step: run '$VENV/bin/pip install -e .[test]' and read its error."
  if "$VENV/bin/pip" show bcc 2>/dev/null | grep -q '^Name: bcc'; then
    die "the PyPI project named 'bcc' (an unrelated library) got installed into .venv. Next step: '$VENV/bin/pip uninstall -y bcc', remove it from wherever it is required, re-run."
  fi
  echo "$WANT" > "$STAMP"
fi

# --- 6. Jupyter kernel --------------------------------------------------------
KSPEC=$VENV/share/jupyter/kernels/ebpf-lab/kernel.json
if [ -f "$KSPEC" ] && grep -q "\"$VENV/bin/python\"" "$KSPEC" && grep -q '"display_name": "Python (ebpf-lab)"' "$KSPEC"; then
  say "Jupyter kernel 'ebpf-lab': registered"
else
  "$VENV/bin/python" -m ipykernel install --sys-prefix --name ebpf-lab --display-name 'Python (ebpf-lab)' >/dev/null \
    || die "registering the Jupyter kernel failed. Next step: run '$VENV/bin/python -m ipykernel install --sys-prefix --name ebpf-lab' and read its error."
  say "registered Jupyter kernel 'ebpf-lab' (Python (ebpf-lab)) in .venv"
fi

# --- 7. final check -----------------------------------------------------------
"$VENV/bin/python" -c 'import bcc, ebpf_lab' \
  || die "'import bcc, ebpf_lab' fails in .venv. Next step: read the traceback above; 'rm -rf .venv' and re-run setup if the environment is damaged."
BCC_VER=$(dpkg-query -W -f='${Version}' python3-bpfcc 2>/dev/null || echo unknown)
say "ready in $(awk -v s="$START" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }') s: $("$VENV/bin/python" --version), bcc (python3-bpfcc) $BCC_VER, kernel $KREL"
