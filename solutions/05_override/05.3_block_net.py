# 05.3  Deny list: a network with a mask, and a port
# Task: write block_net(net, port) -> list[ConnectRule]: a deny list that blocks
#   connect() to any address inside the network `net` (an address with a mask,
#   such as "127.0.0.0/8") on `port`, and nothing else.
# Graded: enforced for real on workloads that connect to 127.0.0.1: when `net`
#   holds 127.0.0.1 the port is blocked and other ports go through; when it does
#   not (hidden: "10.0.0.0/8", "127.0.0.2/32"...) nothing is blocked.
# needs: cgroup socket hooks
# Function: block_net(net: str, port: int) -> list[ConnectRule]

from ebpf_lab.firewall import ConnectRule


def block_net(net: str, port: int) -> list[ConnectRule]:
    """Rules that block connects to addresses in `net` on `port`."""
    return [ConnectRule(net=net, port=port)]
