"""Networking for containers: bridges, addresses, NAT, published ports, name resolution.

This layer knows Linux networking and no Docker objects: it may import only `skiff.kernel`
and `skiff.errors` (and `skiff.log`, which sits below every layer).
"""
