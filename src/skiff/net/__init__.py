"""skiff's networking below the engine: bridge networks on the host's kernel.

`ipam` chooses subnets, gateways and addresses (pure logic); `links` makes the Linux
objects over rtnetlink — bridges, veth pairs into containers' network namespaces, their
addresses and routes; `firewall` keeps skiff's nftables table (NAT, isolation, published
ports), `ports` and `publish` hold Docker's port model and the host ports reserved for it,
`proxy` relays what the kernel's DNAT does not reach, and `dns` is the embedded DNS
server. This package knows nothing of Docker's model: it may import only `kernel` and
`errors`; the engine's `NetworkService` holds the networks and drives it.
"""
