# ebpf-lab: two commands do everything (run as root on a Debian 12 machine set aside for learning).
#   make lab    set up, then start JupyterLab on 127.0.0.1 with notebooks/ open (token printed)
#   make test   set up (the second kernel too), then run the whole test suite (all tiers)
# Both are idempotent: setup skips every step that is already done.
#   make setup  only the setup (packages, headers, tracefs, .venv, Jupyter kernel)
#   make unit   only the pure tests (no root, no bcc, no bpftrace; skips setup)
#   make doctor what eBPF can do on this kernel
#   make test-kernels          kprobes/fentry/LSM for real in Debian's stock kernel under QEMU
#   make test-override-kernel  build (once, ~10 min) a kernel with override() and test it there
#   make record-kprobes        re-record notebooks/recorded/ (output from a kernel with kprobes)
#   make record-override       re-record what override() prints on the override kernel (lesson 05)
# Options: LAB_PORT=8890 make lab;  make test PYTEST_ARGS="-m 'not notebook' -x"
SHELL := /bin/bash
PYTEST_ARGS ?=

.PHONY: help setup lab test unit doctor
help:
	@sed -n '2,12p' Makefile | sed 's/^# \{0,1\}//'

setup:
	@scripts/setup.sh

lab: setup
	@scripts/lab.sh

test: setup-vm
	@scripts/test.sh $(PYTEST_ARGS)

unit:
	@.venv/bin/pytest -m unit $(PYTEST_ARGS)

doctor: setup
	@.venv/bin/ebpf-lab doctor

# --- a second kernel under QEMU (docs/KERNELS.md) ---------------------------------
.PHONY: setup-vm test-kernels override-kernel test-override-kernel record-kprobes record-override
setup-vm: setup
	@scripts/setup_vm.sh

test-kernels: setup-vm
	@.venv/bin/pytest -m kernel2 tests/kernel2/test_kernel2.py $(PYTEST_ARGS)

override-kernel: setup-vm
	@scripts/kernel_override.sh >/dev/null

test-override-kernel: override-kernel
	@EBPF_LAB_OVERRIDE_KERNEL=required .venv/bin/pytest -m kernel2 tests/kernel2/test_override_kernel.py $(PYTEST_ARGS)

record-kprobes: setup-vm
	@scripts/record_kprobes.sh

record-override: override-kernel
	@scripts/record_kprobes.sh --override
