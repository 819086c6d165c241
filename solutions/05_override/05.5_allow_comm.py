# 05.5  Allow list: one process name, one port
# Task: write allow_comm(comm, port) -> list[ConnectRule]: an ALLOW list under
#   which only processes named `comm` may connect, and only to `port`.
# Graded: enforced for real with mode="allow": `comm` reaches the port; `comm`
#   to another port, and another name to the port, are blocked.
# needs: cgroup socket hooks
# Function: allow_comm(comm: str, port: int) -> list[ConnectRule]

from ebpf_lab.firewall import ConnectRule


def allow_comm(comm: str, port: int) -> list[ConnectRule]:
    """Allow-list rules: only `comm` to `port` goes through."""
    return [ConnectRule(comm=comm, port=port)]
