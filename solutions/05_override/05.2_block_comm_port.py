# 05.2  Deny list: one process name to one port
# Task: write block_comm_port(comm, port) -> list[ConnectRule]: a deny list that
#   blocks connect() to `port` by processes named `comm`, and nothing else.
# Graded: enforced for real with ConnectBlock(mode="deny") on fresh workloads:
#   `comm` to the port is blocked; another name to the port, and `comm` to
#   another port, go through.
# needs: cgroup socket hooks
# Function: block_comm_port(comm: str, port: int) -> list[ConnectRule]

from ebpf_lab.firewall import ConnectRule


def block_comm_port(comm: str, port: int) -> list[ConnectRule]:
    """Rules that block `comm`'s connects to `port`."""
    return [ConnectRule(comm=comm, port=port)]
