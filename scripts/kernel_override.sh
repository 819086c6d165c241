#!/usr/bin/env bash
# scripts/kernel_override.sh: build (once) a small kernel that can run override().
#
# Usage (as root):  scripts/kernel_override.sh          (or: make override-kernel)
# Prints the path of the built bzImage on its last line.
#
# Debian's stock 6.1 kernel has kprobes, fentry and LSM programs but not
# CONFIG_FUNCTION_ERROR_INJECTION, so bpf_override_return() (bpftrace's override(),
# lesson 05) cannot load there. This script builds Debian's own 6.1 source
# (package linux-source-6.1) with virtme-ng's minimal configuration plus kprobes,
# BTF, FUNCTION_ERROR_INJECTION and BPF_KPROBE_OVERRIDE, and caches the result
# OUTSIDE the repository, in $EBPF_LAB_KERNEL_CACHE (default /var/cache/ebpf-lab/kernels):
#     <cache>/override-<source version>/bzImage     (plus .config and build.log)
# A second run finds the cached image and returns at once. Measured: about 11 minutes
# of `make -j2 bzImage` on a 2-core machine (see docs/KERNELS.md).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=${EBPF_LAB_KERNEL_CACHE:-/var/cache/ebpf-lab/kernels}
VNG=$ROOT/.venv/bin/vng
say()  { printf '[override-kernel] %s\n' "$*" >&2; }
die()  { printf '[override-kernel] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (installs packages, writes $CACHE). Next step: sudo $0"
BUILD_PKGS=(linux-source-6.1 dwarves flex bison libelf-dev bc libssl-dev gcc make xz-utils)
missing=()
for p in "${BUILD_PKGS[@]}"; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]}"
  apt-get update -q >/dev/null || die "apt-get update failed. Next step: run it by hand and fix what it reports."
  apt-get install -y -q "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed. Next step: run it by hand and read the error."
fi
[ -x "$VNG" ] || die "$VNG not found. Next step: scripts/setup_vm.sh (installs virtme-ng into .venv)."
TARBALL=$(ls /usr/src/linux-source-6.1*.tar.xz 2>/dev/null | sort -V | tail -n 1)
[ -n "$TARBALL" ] || die "no /usr/src/linux-source-6.1*.tar.xz. Next step: apt-get install linux-source-6.1"
SRCVER=$(dpkg-query -W -f='${Version}' linux-source-6.1)
OUT=$CACHE/override-$SRCVER
if [ -s "$OUT/bzImage" ]; then
  say "cached: $OUT/bzImage"
  echo "$OUT/bzImage"
  exit 0
fi
mkdir -p "$CACHE"
exec 8>"$CACHE/.build.lock"
flock 8
WORK=$CACHE/build-$SRCVER
START=$(date +%s)
if [ ! -f "$WORK/Makefile" ]; then
  say "unpacking $TARBALL into $WORK"
  rm -rf "$WORK"; mkdir -p "$WORK"
  tar -xf "$TARBALL" -C "$WORK" --strip-components=1
fi
cd "$WORK"
export PATH="$(dirname "$VNG"):$PATH"
say "configuring (vng --kconfig, then kprobes, BTF, error injection, override)"
"$VNG" --kconfig >build.log 2>&1 || { tail -20 build.log >&2; die "vng --kconfig failed (log: $WORK/build.log)"; }
scripts/config -e KPROBES -e KPROBE_EVENTS -e FUNCTION_ERROR_INJECTION \
  -e BPF_KPROBE_OVERRIDE -e DEBUG_INFO -e DEBUG_INFO_DWARF5 -e DEBUG_INFO_BTF -e BPF_SYSCALL \
  -e BPF_JIT -e BPF_EVENTS -e FTRACE -e FUNCTION_TRACER -e DYNAMIC_FTRACE -e FTRACE_SYSCALLS \
  -e UPROBES -e UPROBE_EVENTS -e IKHEADERS -e IKCONFIG -e IKCONFIG_PROC -e BPF_LSM \
  -e CGROUPS -e CGROUP_BPF -e SOCK_CGROUP_DATA -e DEBUG_FS \
  --set-str LSM "lockdown,yama,bpf" -d DEBUG_INFO_REDUCED -d DEBUG_INFO_NONE -d SYSTEM_TRUSTED_KEYS -d SYSTEM_REVOCATION_KEYS
make olddefconfig >>build.log 2>&1
for opt in KPROBES FUNCTION_ERROR_INJECTION BPF_KPROBE_OVERRIDE DEBUG_INFO_BTF; do
  grep -q "^CONFIG_$opt=y" .config || die "CONFIG_$opt did not stay enabled after olddefconfig (see $WORK/.config)"
done
say "make -j$(nproc) bzImage (about 11 minutes on 2 cores; log: $WORK/build.log)"
make -j"$(nproc)" bzImage >>build.log 2>&1 || { tail -30 build.log >&2; die "kernel build failed (log: $WORK/build.log)"; }
mkdir -p "$OUT"
cp arch/x86/boot/bzImage "$OUT/bzImage.tmp"
cp .config "$OUT/config"
cp build.log "$OUT/build.log"
echo "$(( $(date +%s) - START ))" > "$OUT/build_seconds"
mv "$OUT/bzImage.tmp" "$OUT/bzImage"
say "built in $(cat "$OUT/build_seconds") s: $OUT/bzImage"
# the unpacked tree (about 1.5 GB with objects) is kept for a fast rebuild; remove $WORK to free space
echo "$OUT/bzImage"
