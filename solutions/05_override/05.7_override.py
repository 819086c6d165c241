# 05.7  override(): make connect() fail inside the kernel function
# Task: write override_rules(comm, port) -> list[ConnectRule]: the rules that make
#   ConnectBlock(rules, mode="deny", mechanism="override", unsafe=True) fail the
#   connects of processes named `comm` to `port` with EPERM: a kprobe on
#   __x64_sys_connect calls bpf_override_return (what bpftrace's override() does).
#   This needs kprobes, CONFIG_FUNCTION_ERROR_INJECTION and
#   CONFIG_BPF_KPROBE_OVERRIDE; on a kernel without them the checks are skipped
#   and 05.2 is the variant that works.
# Graded: as 05.2, enforced with the override mechanism.
# needs: override
# Function: override_rules(comm: str, port: int) -> list[ConnectRule]

from ebpf_lab.firewall import ConnectRule


def override_rules(comm: str, port: int) -> list[ConnectRule]:
    """Rules for the override mechanism."""
    return [ConnectRule(comm=comm, port=port)]
