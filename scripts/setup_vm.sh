#!/usr/bin/env bash
# scripts/setup_vm.sh: make this machine able to boot a second kernel under QEMU. Idempotent.
#
# Usage (as root):  scripts/setup_vm.sh       (or: make setup-vm; `make test` runs it after setup)
#
# The lab's own kernel lacks kprobes, fentry and LSM programs. The `kernel2` test tier
# (tests/kernel2/, `make test-kernels`) boots Debian's stock kernel with this machine's
# root filesystem under QEMU (virtme-ng) and runs those parts there. Steps, each skipped
# when already done:
#   1. qemu-system-x86, busybox-static, file, kmod and linux-image-<R>-unsigned, where <R> is
#      the release of the installed linux-headers-amd64 (so bcc inside the guest has exactly
#      matching headers). virtme-ng builds the guest's initramfs (which loads the stock
#      kernel's virtio and 9p modules) from a statically linked busybox, checks that it is
#      static with `file`, and finds the modules with `modprobe --show-depends` (kmod)
#   2. virtme-ng (the `vng` command) into .venv, pinned
#   3. only with EBPF_LAB_OVERRIDE_KERNEL=build: the override kernel
#      (scripts/kernel_override.sh, about 11 min the first time, cached in
#      /var/cache/ebpf-lab/kernels afterwards)
#
# Environment: EBPF_LAB_VM=0 skips everything (the kernel2 tier then skips, saying why).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK=1
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
VIRTME_NG_VERSION=1.42
say()  { printf '[setup-vm] %s\n' "$*"; }
die()  { printf '[setup-vm] ERROR: %s\n' "$*" >&2; exit 1; }

if [ "${EBPF_LAB_VM:-1}" = 0 ]; then
  say "EBPF_LAB_VM=0: not setting up the second kernel (the kernel2 tests will skip)"
  exit 0
fi
[ "$(id -u)" = 0 ] || die "needs root (installs packages). Next step: sudo $0"
[ "$(uname -m)" = x86_64 ] || { say "not x86_64: the second-kernel tier is x86_64 only; skipping"; exit 0; }
[ -x "$VENV/bin/python" ] || die "$VENV not found. Next step: scripts/setup.sh (make setup) first."

installed() { dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q '^install ok installed$'; }
DEPENDS=$(dpkg-query -W -f='${Depends}' linux-headers-amd64 2>/dev/null) \
  || die "linux-headers-amd64 is not installed. Next step: scripts/setup.sh (it installs it)."
RELEASE=$(printf '%s\n' "$DEPENDS" | tr ',' '\n' | sed -n 's/^ *linux-headers-\([^ ]*-amd64\).*/\1/p' | head -n 1)
[ -n "$RELEASE" ] || die "could not read the kernel release from linux-headers-amd64's Depends ($DEPENDS)."
MISSING=()
installed qemu-system-x86 || MISSING+=(qemu-system-x86)
for pkg in busybox-static file kmod; do installed "$pkg" || MISSING+=("$pkg"); done
# the unsigned image; a signed one of the same release (already in /boot) is just as good
[ -f "/boot/vmlinuz-$RELEASE" ] || MISSING+=("linux-image-$RELEASE-unsigned")
if [ "${#MISSING[@]}" -gt 0 ]; then
  say "apt-get install ${MISSING[*]}"
  apt-get update -q >/dev/null || die "apt-get update failed. Next step: run it by hand and fix what it reports."
  # --no-install-recommends: no bootloader changes, nothing but the image and QEMU
  apt-get install -y -q --no-install-recommends "${MISSING[@]}" >/dev/null \
    || die "apt-get install ${MISSING[*]} failed. Next step: run it by hand and read the error (or EBPF_LAB_VM=0 to skip the second kernel)."
else
  say "qemu-system-x86, busybox-static, file, kmod and the stock kernel $RELEASE: present"
fi
[ -f "/boot/vmlinuz-$RELEASE" ] || die "/boot/vmlinuz-$RELEASE is missing after installing linux-image-$RELEASE-unsigned."

if [ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("virtme-ng"))' 2>/dev/null)" = "$VIRTME_NG_VERSION" ] \
   && [ -x "$VENV/bin/vng" ]; then
  say "virtme-ng $VIRTME_NG_VERSION: present in .venv"
else
  say "pip install virtme-ng==$VIRTME_NG_VERSION into .venv"
  "$VENV/bin/pip" install -q --progress-bar off "virtme-ng==$VIRTME_NG_VERSION" \
    || die "pip install virtme-ng failed. Next step: '$VENV/bin/pip install virtme-ng==$VIRTME_NG_VERSION' and read the error."
fi

if [ "${EBPF_LAB_OVERRIDE_KERNEL:-}" = build ]; then
  scripts/kernel_override.sh >/dev/null
fi
say "ready: make test-kernels boots /boot/vmlinuz-$RELEASE under QEMU (software emulation)"
