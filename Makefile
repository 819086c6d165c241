# ebpf-lab: two commands do everything (run as root on a Debian 12 machine set aside for learning).
#   make lab    set up, then start JupyterLab on 127.0.0.1 with notebooks/ open (token printed)
#   make test   set up, then run the whole test suite (all tiers)
# Both are idempotent: setup skips every step that is already done.
#   make setup  only the setup (packages, headers, tracefs, .venv, Jupyter kernel)
#   make unit   only the pure tests (no root, no bcc, no bpftrace; skips setup)
#   make doctor what eBPF can do on this kernel
# Options: LAB_PORT=8890 make lab;  make test PYTEST_ARGS="-m 'not notebook' -x"
SHELL := /bin/bash
PYTEST_ARGS ?=

.PHONY: help setup lab test unit doctor
help:
	@sed -n '2,8p' Makefile | sed 's/^# \{0,1\}//'

setup:
	@scripts/setup.sh

lab: setup
	@scripts/lab.sh

test: setup
	@scripts/test.sh $(PYTEST_ARGS)

unit:
	@.venv/bin/pytest -m unit $(PYTEST_ARGS)

doctor: setup
	@.venv/bin/ebpf-lab doctor
