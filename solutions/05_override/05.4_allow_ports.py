# 05.4  Allow list: only these ports
# Task: write allow_ports(ports) -> list[ConnectRule]: the rules of an ALLOW list
#   (ConnectBlock(rules, mode="allow"): whatever matches no rule is blocked) that
#   let connects to the given ports through, and block every other port.
# Graded: enforced for real with mode="allow": each listed port goes through,
#   another port is blocked.
# needs: cgroup socket hooks
# Function: allow_ports(ports: list[int]) -> list[ConnectRule]

from ebpf_lab.firewall import ConnectRule


def allow_ports(ports: list[int]) -> list[ConnectRule]:
    """Allow-list rules: only connects to `ports` go through."""
    return [ConnectRule(port=p) for p in ports]
