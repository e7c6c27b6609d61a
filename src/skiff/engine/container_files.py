"""The /etc/hostname, /etc/hosts and /etc/resolv.conf a container sees, written as Docker
writes them into its container folder and bound over the image's own.

For a container with a network namespace of its own /etc/hosts holds Docker's localhost
and IPv6 lines, ``--add-host`` entries (``host-gateway`` meaning the gateway of its network,
or the default bridge's) and, once it runs on a network, a line for each of its addresses
with its hostname; with ``--network host`` it is a copy of the host's. /etc/resolv.conf is
the host's with its localhost nameservers filtered out (they mean nothing in another
network namespace) and Google's public resolvers in their place when none is left, as
libnetwork does; on a user-defined network it names the embedded DNS server at 127.0.0.11
instead (the host's search and options kept, ``ndots:0`` added, as Docker's), which
forwards other names to the host's resolvers or to ``--dns``. ``--dns``, ``--dns-search``
and ``--dns-option`` replace the matching lines. With ``--network host`` the host's file is copied unchanged. The files are
written at create and again at each start (`write_network_files`), when the addresses are
known. The working directory (``-w``) is made in the rootfs at create, as dockerd makes it.
"""

from __future__ import annotations

import errno
import os

from skiff.engine.oci_spec import ContainerFiles
from skiff.errors import KernelError, SkiffError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from skiff.engine.network_endpoints import NetworkFacts

DEFAULT_HOSTS = ("127.0.0.1\tlocalhost\n"
                 "::1\tlocalhost ip6-localhost ip6-loopback\n"
                 "fe00::0\tip6-localnet\n"
                 "ff00::0\tip6-mcastprefix\n"
                 "ff02::1\tip6-allnodes\n"
                 "ff02::2\tip6-allrouters\n")
DEFAULT_NAMESERVERS = ("8.8.8.8", "8.8.4.4")
HOST_RESOLV_CONF = "/etc/resolv.conf"
HOST_HOSTS = "/etc/hosts"
EMBEDDED_DNS = "127.0.0.11"  # where the DNS server listens inside each container's netns


def files_in(folder: str) -> ContainerFiles:
    return ContainerFiles(hostname=os.path.join(folder, "hostname"),
                          hosts=os.path.join(folder, "hosts"),
                          resolv_conf=os.path.join(folder, "resolv.conf"))


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def hosts_text(network_mode: str, extra_hosts: Sequence[str] = (),
               host_hosts: str | None = None, own: Sequence[str] = (), hostname: str = "",
               host_gateway: str = "") -> str:
    """/etc/hosts: the base, the --add-host entries, then `own` addresses with `hostname`."""
    base = (_read(HOST_HOSTS) if host_hosts is None else host_hosts) \
        if network_mode == "host" else DEFAULT_HOSTS
    if base and not base.endswith("\n"):
        base += "\n"
    for entry in extra_hosts:
        name, _, address = entry.partition(":")
        if address == "host-gateway":
            address = host_gateway
        base += f"{address}\t{name}\n"
    if hostname:
        base += "".join(f"{address}\t{hostname}\n" for address in own)
    return base


def _is_localhost(address: str) -> bool:
    return address.startswith("127.") or address in ("::1", "0:0:0:0:0:0:0:1")


def host_nameservers(text: str | None = None) -> list[str]:
    """The host's resolvers (/etc/resolv.conf, or `text`) that are not loopback addresses."""
    found = []
    for line in (_read(HOST_RESOLV_CONF) if text is None else text).splitlines():
        words = line.split()
        if len(words) > 1 and words[0] == "nameserver" and not _is_localhost(words[1]):
            found.append(words[1])
    return found


def resolv_conf_text(network_mode: str, dns: Sequence[str] = (), search: Sequence[str] = (),
                     options: Sequence[str] = (), host_file: str | None = None,
                     internal_dns: bool = False) -> str:
    text = _read(HOST_RESOLV_CONF) if host_file is None else host_file
    if internal_dns:  # the embedded server forwards the rest (to --dns, if given)
        return _embedded_resolv_conf(text, search, options)
    if network_mode == "host" and not (dns or search or options):
        return text
    nameservers: list[str] = []
    domains: list[str] = []
    opts: list[str] = []
    others: list[str] = []
    for line in text.splitlines():
        words = line.split()
        if words and words[0] == "nameserver" and len(words) > 1:
            nameservers.append(words[1])
        elif words and words[0] in ("search", "domain"):
            domains = words[1:]
        elif words and words[0] == "options":
            opts += words[1:]
        elif line.strip():
            others.append(line)
    if dns or search or options:
        nameservers = list(dns) or nameservers
        domains = list(search) or domains
        opts = list(options) or opts
        others = []
    if network_mode != "host":
        nameservers = [n for n in nameservers if not _is_localhost(n)] or list(DEFAULT_NAMESERVERS)
    out = [line + "\n" for line in others]
    if domains and domains != ["."]:
        out.append("search " + " ".join(domains) + "\n")
    out += [f"nameserver {n}\n" for n in nameservers]
    if opts:
        out.append("options " + " ".join(opts) + "\n")
    return "".join(out)


def _embedded_resolv_conf(host_text: str, search: Sequence[str],
                          options: Sequence[str]) -> str:
    # the host's search domains and options are kept unless given (Docker's file on a
    # systemd-resolved host reads "options edns0 trust-ad ndots:0")
    domains, host_opts = list(search), []
    for line in host_text.splitlines():
        words = line.split()
        if words and words[0] in ("search", "domain") and not search:
            domains = words[1:]
        elif words and words[0] == "options":
            host_opts += words[1:]
    opts = list(options) or host_opts
    if not any(o.startswith("ndots:") for o in opts):
        opts.append("ndots:0")
    out = "search " + " ".join(domains) + "\n" if domains and domains != ["."] else ""
    return out + f"nameserver {EMBEDDED_DNS}\n" + "options " + " ".join(opts) + "\n"


def write_files(files: ContainerFiles, config: dict[str, Any], host: dict[str, Any],
                host_gateway: str = "") -> None:
    """Write the three files for a container (Config and HostConfig as stored), before it
    has any address; `host_gateway` is what ``--add-host …:host-gateway`` means until then
    (the default bridge's gateway, as dockerd's default --host-gateway-ip)."""
    from skiff.engine.network_endpoints import NetworkFacts

    write_network_files(files, config, host, NetworkFacts([], False, host_gateway))


def write_network_files(files: ContainerFiles, config: dict[str, Any], host: dict[str, Any],
                        facts: NetworkFacts) -> None:
    """Write the three files, with what `facts` says of the container's networks."""
    mode = host["NetworkMode"]
    hostname = config.get("Hostname") or ""
    _write(files.hostname, hostname + "\n")
    _write(files.hosts, hosts_text(mode, host.get("ExtraHosts") or (), own=facts.addresses,
                                   hostname=hostname, host_gateway=facts.host_gateway))
    _write(files.resolv_conf, resolv_conf_text(mode, host.get("Dns") or (),
                                               host.get("DnsSearch") or (),
                                               host.get("DnsOptions") or (),
                                               internal_dns=facts.internal_dns))


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    with open(fd, "w", encoding="utf-8") as f:
        f.write(text)


def make_working_dir(rootfs: str, workdir: str) -> str:
    """Make `workdir` in `rootfs` (moby's SetupWorkingDirectory) and give its host path: a
    file in its place is Docker's "Cannot mkdir: ... is not a directory" (a 500 there too),
    not a host path."""
    from skiff.runtime.secure_path import make_target, secure_join

    try:
        return make_target(rootfs, workdir, is_dir=True)
    except KernelError as e:
        path = secure_join(rootfs, workdir)
        if e.errno == errno.ENOTDIR and os.path.lexists(path) and not os.path.isdir(path):
            raise SkiffError(f"Cannot mkdir: {os.path.normpath(workdir)} is not a "
                             "directory") from None
        raise
