"""skiff.net.dns_redirect's batch as text: the DNAT of 127.0.0.11:53 to the server's ports
and the SNAT back, switched in one transaction, and the input it refuses (the kernel's side
is in tests/integration/test_dns_server.py)."""

from __future__ import annotations

import pytest

from skiff.errors import FirewallError, InvalidArgument
from skiff.net import dns_redirect


def test_the_batch_switches_the_rules_without_remaking_the_table() -> None:
    text = dns_redirect.render("127.0.0.11", 41000, 42000)
    table = f"table ip {dns_redirect.TABLE}"
    # made if missing, its rules flushed, then declared again with the new ones: one batch;
    # never deleted (that would unregister its hooks and wait for an RCU grace period)
    assert text.startswith(f"{table} {{}}\nflush {table}\n{table} {{\n")
    assert "delete" not in text
    assert "type nat hook output priority -100; policy accept;" in text
    assert "type nat hook postrouting priority srcnat; policy accept;" in text
    for rule in ["ip daddr 127.0.0.11 udp dport 53 dnat to 127.0.0.11:41000",
                 "ip daddr 127.0.0.11 tcp dport 53 dnat to 127.0.0.11:42000",
                 "ip saddr 127.0.0.11 udp sport 41000 snat to :53",
                 "ip saddr 127.0.0.11 tcp sport 42000 snat to :53"]:
        assert text.count(rule) == 1, rule


@pytest.mark.parametrize("address, udp, tcp, message", [
    ("::1", 41000, 42000, "only IPv4"),
    ("127.0.0.11; flush ruleset", 41000, 42000, "invalid DNS redirect address"),
    ("127.0.0.11", 0, 42000, "invalid DNS redirect port 0"),
    ("127.0.0.11", 41000, 65536, "invalid DNS redirect port 65536"),
    ("127.0.0.11", True, 42000, "invalid DNS redirect port True"),
])
def test_bad_input_is_refused(address: str, udp: int, tcp: int, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        dns_redirect.render(address, udp, tcp)


LISTED = ("table ip skiff-dns {\n\tchain output {\n"
          "\t\ttype nat hook output priority -100; policy accept;\n"
          "\t\tip daddr 127.0.0.11 udp dport 53 dnat to 127.0.0.11:41000\n"
          "\t\tip daddr 127.0.0.11 tcp dport 53 dnat to 127.0.0.11:42000\n\t}\n\n"
          "\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
          "\t\tip saddr 127.0.0.11 udp sport 41000 snat to :53\n"
          "\t\tip saddr 127.0.0.11 tcp sport 42000 snat to :53\n\t}\n}\n")  # as nft 1.0.6 lists it


def test_the_ports_in_force_are_read_from_our_rules_only(monkeypatch: pytest.MonkeyPatch) -> None:
    listing: list[str] = []

    def run_batch(batch: str) -> str:
        assert batch == f"list table ip {dns_redirect.TABLE}\n"
        if not listing:
            raise FirewallError("nft -f -: Error: No such file or directory")
        return listing[0]

    monkeypatch.setattr(dns_redirect.firewall, "run_batch", run_batch)
    assert dns_redirect.in_force("127.0.0.11") is None  # no table: a new namespace
    listing.append(LISTED)
    assert dns_redirect.in_force("127.0.0.11") == (41000, 42000)
    for changed in (LISTED.replace("\t\tip saddr 127.0.0.11 tcp sport 42000 snat to :53\n", ""),
                    LISTED.replace("tcp sport 42000", "tcp sport 42001"),
                    LISTED.replace("\t}\n}\n", "\t\tip daddr 10.0.0.1 dnat to 10.0.0.2\n\t}\n}\n"),
                    LISTED.replace("\t\ttype nat hook output priority -100; policy accept;\n", ""),
                    LISTED.replace("policy accept;\n\t\tip saddr", "policy drop;\n\t\tip saddr")):
        listing[0] = changed  # not what `apply` makes: `apply` is to make it anew
        assert dns_redirect.in_force("127.0.0.11") is None, changed
