"""The host's firewall before and after a peer engine ran: a snapshot, the undo of what it added.

A peer that edits the host's shared tables (netavark, podman's network back end, writes rules
and chains into iptables' ``nat`` and ``filter`` tables, which iptables-nft keeps as the
nftables tables ``ip nat`` and ``ip filter``) leaves its scaffolding behind when its last
container goes: the ``NETAVARK_*`` / ``NETAVARK-*`` chains, the jumps to them from the
built-in chains, the masquerade rule of its port-forwarding mark, and the tables themselves.
`take` records every iptables variant there is (``iptables``/``ip6tables``, ``-nft`` and
``-legacy``), ``nft list ruleset`` and the forwarding sysctls; `undo` removes from the host
exactly the rules and chains that appeared since a snapshot and that the caller's predicate
calls its own (whatever else appeared — another user of the machine — is reported and left
alone), deletes an iptables-nft table that appeared and is left empty, and puts the sysctls
back; `differences` says what still differs from the snapshot afterwards. Rule by rule,
through the same iptables command that wrote them, since that is how they were made: a
table of iptables-nft must not be edited by ``nft`` while it holds rules.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

# the iptables variants, each with its -save command; Debian's `iptables` is one of them
VARIANTS = ("iptables-nft", "ip6tables-nft", "iptables-legacy", "ip6tables-legacy")
# the tables iptables-nft makes in nftables, by family
IPTABLES_NFT_FAMILIES = {"iptables-nft": "ip", "ip6tables-nft": "ip6"}
SYSCTLS = ("net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding",
           "net/ipv4/conf/all/route_localnet", "net/ipv4/conf/default/route_localnet")
_CHAIN = re.compile(r"^:(\S+) (\S+)")


@dataclass
class Table:
    """One table of one iptables variant: its chains (name -> policy, ``-`` for a user
    chain) and its rules, each as iptables-save prints it (``-A CHAIN …``)."""

    chains: dict[str, str] = field(default_factory=dict)
    rules: list[str] = field(default_factory=list)


@dataclass
class Snapshot:
    iptables: dict[str, dict[str, Table]]   # variant -> table name -> Table
    nft: str                                # `nft -s list ruleset` (no counters)
    sysctls: dict[str, str]


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True)


def parse_save(text: str) -> dict[str, Table]:
    tables: dict[str, Table] = {}
    current: Table | None = None
    for line in text.splitlines():
        if line.startswith("*"):
            current = tables.setdefault(line[1:].strip(), Table())
        elif current is None or line.startswith("#") or line == "COMMIT":
            continue
        elif (m := _CHAIN.match(line)) is not None:
            current.chains[m.group(1)] = m.group(2)
        elif line.startswith("-A "):
            current.rules.append(line)
    return tables


def take() -> Snapshot:
    ipt: dict[str, dict[str, Table]] = {}
    for variant in VARIANTS:
        if shutil.which(f"{variant}-save") is None:
            continue
        r = _run([f"{variant}-save"])
        if r.returncode != 0:
            raise RuntimeError(f"{variant}-save: exited {r.returncode}: {r.stderr.strip()}")
        ipt[variant] = parse_save(r.stdout)
    r = _run(["nft", "-s", "list", "ruleset"])
    if r.returncode != 0:
        raise RuntimeError(f"nft list ruleset: exited {r.returncode}: {r.stderr.strip()}")
    sysctls = {}
    for name in SYSCTLS:
        try:
            sysctls[name] = (Path("/proc/sys") / name).read_text().strip()
        except OSError:
            pass
    return Snapshot(ipt, r.stdout, sysctls)


def added(now: list[str], before: list[str]) -> list[str]:
    """The rules of `now` that `before` did not have (as a multiset: a rule added twice
    counts twice), in `now`'s order."""
    left = Counter(before)
    out = []
    for rule in now:
        if left[rule]:
            left[rule] -= 1
        else:
            out.append(rule)
    return out


def _empty_nft_table(family: str, name: str) -> bool:
    """Whether the nftables table holds no rule and no chain but base chains."""
    r = _run(["nft", "-j", "list", "table", family, name])
    if r.returncode != 0:
        return False
    items = json.loads(r.stdout).get("nftables", [])
    return not any("rule" in i or ("chain" in i and "hook" not in i["chain"]) for i in items)


def undo(before: Snapshot, ours: Callable[[str], bool]) -> tuple[list[str], list[str]]:
    """Remove what appeared since `before` and `ours` (given a rule line or a chain name)
    claims; returns (what was removed, what appeared and was left alone, with why)."""
    now = take()
    removed: list[str] = []
    left: list[str] = []
    for variant, tables in now.iptables.items():
        for tname, table in tables.items():
            old = before.iptables.get(variant, {}).get(tname, Table())
            for rule in reversed(added(table.rules, old.rules)):
                if not ours(rule):
                    left.append(f"{variant} -t {tname} {rule}: not ours")
                    continue
                argv = shlex.split(rule)
                r = _run([variant, "-w", "-t", tname, "-D", *argv[1:]])
                (removed if r.returncode == 0 else left).append(
                    f"{variant} -t {tname} {rule}" + ("" if r.returncode == 0 else
                                                      f": {r.stderr.strip()}"))
            for chain in table.chains.keys() - old.chains.keys():
                if table.chains[chain] != "-":   # a built-in chain: it goes with its table
                    continue
                if not ours(chain):
                    left.append(f"{variant} -t {tname} chain {chain}: not ours")
                    continue
                # -X refuses a chain that still holds rules or is jumped to: someone
                # else's rule there keeps the chain (and is reported)
                r = _run([variant, "-w", "-t", tname, "-X", chain])
                (removed if r.returncode == 0 else left).append(
                    f"{variant} -t {tname} chain {chain}" + ("" if r.returncode == 0 else
                                                            f": {r.stderr.strip()}"))
    for variant, family in IPTABLES_NFT_FAMILIES.items():
        for tname in now.iptables.get(variant, {}).keys() - before.iptables.get(variant, {}).keys():
            if _empty_nft_table(family, tname):
                r = _run(["nft", "delete", "table", family, tname])
                (removed if r.returncode == 0 else left).append(
                    f"nft table {family} {tname}" + ("" if r.returncode == 0 else
                                                     f": {r.stderr.strip()}"))
            else:
                left.append(f"nft table {family} {tname}: still holds rules")
    for name, value in before.sysctls.items():
        path = Path("/proc/sys") / name
        if now.sysctls.get(name) != value:
            path.write_text(value)
            removed.append(f"sysctl {name} {now.sysctls.get(name)} -> {value}")
    return removed, left


def nft_tables(ruleset: str) -> dict[str, str]:
    """``nft list ruleset`` split into its tables: "family name" -> the table's text."""
    tables: dict[str, str] = {}
    key = None
    for line in ruleset.splitlines(keepends=True):
        if line.startswith("table "):
            key = line.split("{")[0][len("table "):].strip()
            tables[key] = ""
        if key is not None:
            tables[key] += line
            if line.rstrip() == "}":
                key = None
    return tables


def differences(before: Snapshot, after: Snapshot) -> tuple[list[str], list[str]]:
    """What differs between two snapshots, one line each: (in the tables iptables writes —
    every iptables variant's, and iptables-nft's nftables tables — and the sysctls; in other
    nftables tables, with the table's name). Both empty: identical."""
    shared: list[str] = []
    for variant in sorted(before.iptables.keys() | after.iptables.keys()):
        b, a = before.iptables.get(variant, {}), after.iptables.get(variant, {})
        for tname in sorted(b.keys() | a.keys()):
            tb, ta = b.get(tname), a.get(tname)
            if tb is None or ta is None:
                shared.append(f"{variant}: table {tname} {'appeared' if tb is None else 'went'}")
                continue
            shared += [f"{variant} -t {tname}: + {r}" for r in added(ta.rules, tb.rules)]
            shared += [f"{variant} -t {tname}: - {r}" for r in added(tb.rules, ta.rules)]
            if ta.chains != tb.chains:
                shared.append(f"{variant} -t {tname}: chains {sorted(tb.chains)} -> "
                              f"{sorted(ta.chains)}")
    shared += [f"sysctl {k}: {v} -> {after.sysctls.get(k)}" for k, v in before.sysctls.items()
               if after.sysctls.get(k) != v]
    elsewhere: list[str] = []
    b_nft, a_nft = nft_tables(before.nft), nft_tables(after.nft)
    iptables_nft = {f"{family} {t}" for v, family in IPTABLES_NFT_FAMILIES.items()
                    for t in (*before.iptables.get(v, {}), *after.iptables.get(v, {}))}
    for key in sorted(b_nft.keys() | a_nft.keys()):
        if b_nft.get(key) == a_nft.get(key):
            continue
        what = ("appeared" if key not in b_nft else "went" if key not in a_nft else "changed")
        (shared if key in iptables_nft else elsewhere).append(f"nft table {key}: {what}")
    return shared, elsewhere
