#!/bin/sh
# Record what kprobes, kretprobes, fentry (kfunc) and override() print on a kernel
# that has them, for lessons 03-05 (this lab's own kernel lacks them).
#
# Usage (as root, from the checkout):   scripts/record_kprobes.sh [KERNEL_IMAGE]
#                                       scripts/record_kprobes.sh --override
#
# --override (make record-override): boot the kernel built with error injection
# (scripts/kernel_override.sh, cached; built first if missing) and record only what
# lesson 05 shows from it: override() making the lab's connect workload fail with
# EPERM, and that kernel's error-injection facts. Labelled with that kernel.
#
# Boots Debian's stock kernel (default: the newest /boot/vmlinuz-6.1.*-amd64) under
# QEMU with virtme-ng, in software emulation (about 20 s to boot, seconds per
# program), with this machine's root filesystem, runs each program there for real
# through `python -m ebpf_lab.recorded run`, and writes notebooks/recorded/NAME.json.
# Nothing is edited by hand: each file holds the guest's uname -r, the date, the
# command and its verbatim output. Notebooks label them "not from your kernel".
#
# Needs: apt-get install qemu-system-x86 linux-image-6.1.0-NN-amd64-unsigned (NN as
# in linux-headers-amd64), and `.venv/bin/pip install virtme-ng`.
set -eu
cd "$(dirname "$0")/.."
HOME_DIR=$(pwd)
MODE=stock
MACHINE="Debian stock kernel under QEMU (virtme-ng, software emulation)"
REGEN="scripts/record_kprobes.sh"
if [ "${1:-}" = --override ]; then
    MODE=override
    MACHINE="kernel built from Debian's linux-source-6.1 with error injection (scripts/kernel_override.sh), under QEMU (virtme-ng, software emulation)"
    REGEN="scripts/record_kprobes.sh --override (make record-override)"
    KERNEL=$(scripts/kernel_override.sh | tail -n 1)
else
    KERNEL=${1:-$(ls /boot/vmlinuz-6.1.*-amd64 2>/dev/null | sort -V | tail -n 1)}
fi
VNG=${VNG:-$HOME_DIR/.venv/bin/vng}
[ -n "$KERNEL" ] && [ -e "$KERNEL" ] || { echo "no kernel image: apt-get install linux-image-6.1.0-NN-amd64-unsigned" >&2; exit 2; }
export PATH="$(dirname "$VNG"):$PATH"
[ -x "$VNG" ] || { echo "no vng: .venv/bin/pip install virtme-ng" >&2; exit 2; }
OUT=$(mktemp -d /tmp/ebpf-lab-recorded.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
chmod 755 "$OUT"
cat > "$OUT/guest.sh" <<GUEST
#!/bin/sh
# runs inside the guest, as root
mount -t debugfs nodev /sys/kernel/debug 2>/dev/null || true
mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
cd "$HOME_DIR"
PY="$HOME_DIR/.venv/bin/python"
MACHINE="$MACHINE"
REGEN="$REGEN"
TOOL="\$(bpftrace --version 2>/dev/null)"
rec() { name=\$1; program=\$2; shift 2; "\$PY" -m ebpf_lab.recorded run "\$name" "$OUT" --machine "\$MACHINE" --tool "\$TOOL" --regenerate "\$REGEN" --program "\$program" -- "\$@" || true; }
if [ "$MODE" = override ]; then
# the host's home is read-only in the guest: the workload helper is built in a scratch cache
LL=\$(EBPF_LAB_CACHE_DIR=/tmp/ebpf-lab-rec "\$PY" -c 'from ebpf_lab.workloads import labload_path; print(labload_path())')
P='grep -c _eil_addr_ /proc/kallsyms; grep -c . /sys/kernel/debug/error_injection/list; grep -E "^__x64_sys_connect|^should_failslab" /sys/kernel/debug/error_injection/list'
rec error_injection_override_kernel "\$P" sh -c "\$P"
# scoped to the process bpftrace starts (cpid): nothing else on the machine is touched
P='kprobe:__x64_sys_connect /pid == cpid/ { override(-1); @overridden = count(); }'
rec override_connect_eperm "\$P" bpftrace --unsafe -e "\$P" -c "\$LL connect 23 9"
exit 0
fi

P='kprobe:do_sys_openat2 /comm == str(\$1)/ { printf("%s (%d) -> %s\n", comm, pid, str(uptr(arg1))); }'
rec kprobe_openat2 "\$P" bpftrace -e "\$P" -c "/usr/bin/cat /etc/hosts" cat

P='kretprobe:do_sys_openat2 /comm == str(\$1)/ { printf("%s (%d) do_sys_openat2 returned %d\n", comm, pid, retval); }'
rec kretprobe_openat2 "\$P" bpftrace -e "\$P" -c "/usr/bin/cat /etc/hosts /no/such/file" cat

P='kprobe:do_sys_openat2+9 { @hits = count(); exit(); }'
rec kprobe_offset_bpftrace "\$P" bpftrace -e "\$P"

P='bpftrace -l "kprobe:*" | wc -l; bpftrace -l "tracepoint:*" | wc -l'
rec kprobe_count "\$P" sh -c "\$P"

P='bpftrace --info'
rec bpftrace_info "\$P" bpftrace --info

P='bpftrace -lv kfunc:vfs_open'
rec kfunc_vfs_open_args "\$P" bpftrace -lv kfunc:vfs_open

P='kfunc:vfs_open /comm == str(\$1)/ { printf("%s (%d) vfs_open %s\n", comm, pid, str(args->path->dentry->d_name.name)); }'
rec kfunc_vfs_open "\$P" bpftrace -e "\$P" -c "/usr/bin/cat /etc/hosts" cat

P='grep -c _eil_addr_ /proc/kallsyms; ls /sys/kernel/debug/error_injection/list; grep -E "CONFIG_(KPROBES|FUNCTION_ERROR_INJECTION|BPF_KPROBE_OVERRIDE)[= ]" /boot/config-\$(uname -r)'
rec error_injection "\$P" sh -c "\$P"

P='kprobe:__x64_sys_connect /comm == str(\$1)/ { override(-1); }'
rec override_connect "\$P" bpftrace --unsafe -e "\$P" -c "/usr/bin/true" python3
GUEST
chmod 755 "$OUT/guest.sh"
echo "booting $KERNEL under QEMU (software emulation; a few minutes)..." >&2
"$VNG" -r "$KERNEL" --disable-kvm --memory 2G --user root --rwdir "$OUT" -- "$OUT/guest.sh"
mkdir -p notebooks/recorded
for f in "$OUT"/*.json; do
    [ -e "$f" ] || { echo "the guest wrote no recording; see the output above" >&2; exit 1; }
    cp "$f" notebooks/recorded/
    echo "recorded notebooks/recorded/$(basename "$f")"
done
