"""Networking: bridges, NAT and published ports, name resolution (see each module)."""
