# 05.6  Kill switch: bpf_send_signal instead of blocking
# Task: write kill_rules(comm, port) -> list[ConnectRule]: the rules that make
#   ConnectBlock(rules, mode="deny", mechanism="signal", unsafe=True) KILL a
#   process named `comm` when it connects to `port`. The signal mechanism runs
#   at tracepoint:syscalls:sys_enter_connect and calls bpf_send_signal(SIGKILL):
#   it is a kill switch, not a filter (the kernel may still start the connect).
# Graded: enforced for real with the signal mechanism, inside the lab's cgroup
#   only: `comm` to the port is killed (exit status -9); another name to the
#   port, and `comm` to another port, run to the end.
# needs: tracepoint, bpf_send_signal
# Function: kill_rules(comm: str, port: int) -> list[ConnectRule]

from ebpf_lab.firewall import ConnectRule


def kill_rules(comm: str, port: int) -> list[ConnectRule]:
    """Rules whose match kills the process (signal mechanism)."""
    return [ConnectRule(comm=comm, port=port)]
