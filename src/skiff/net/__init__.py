"""skiff's networking below the engine: bridge networks on the host's kernel.

`ipam` chooses subnets, gateways and addresses (pure logic); `links` makes the Linux
objects over rtnetlink — bridges, veth pairs into containers' network namespaces, their
addresses and routes. The firewall (NAT, published ports) and the embedded DNS server live
beside them. This package knows nothing of Docker's model: it may import only `kernel`
and `errors`; the engine's `NetworkService` holds the networks and drives it.
"""
