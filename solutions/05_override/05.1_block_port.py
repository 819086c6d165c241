# 05.1  Deny list: block every connect to one port
# Task: write block_port(port) -> list[ConnectRule]: the rules of a deny list
#   (ConnectBlock(rules, mode="deny")) that block every connect() to `port`,
#   whichever process makes it, and nothing else.
# Graded: the grader enforces your rules for real (a cgroup connect4 program)
#   on fresh workloads with random names and ports: connects to the port must
#   fail with EPERM, connects to another port must go through.
# needs: cgroup socket hooks
# Function: block_port(port: int) -> list[ConnectRule]

from ebpf_lab.firewall import ConnectRule


def block_port(port: int) -> list[ConnectRule]:
    """Rules that block every connect() to `port`."""
    return [ConnectRule(port=port)]
