"""``HostConfig.SecurityOpt`` read as dockerd reads it (moby daemon/create.go parseSecurityOpt).

Each entry is ``key=value`` (``key:value``, Docker's deprecated spelling, still works):
``seccomp=unconfined|builtin|<profile JSON>`` (the docker CLI reads a profile file and sends
its JSON, so the daemon only ever sees JSON), ``no-new-privileges[=bool]``, ``apparmor=…``
and ``label=…``. skiff has no AppArmor profile or SELinux label of its own, so only the
values that change nothing there (``apparmor=unconfined``, ``label=disable``) are taken;
the others are refused by name. The entries are stored as given, as Docker stores them.
"""

from __future__ import annotations

from skiff.errors import InvalidArgument
from skiff.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

UNCONFINED = "unconfined"
BUILTIN = "builtin"
_NOT_YET = ": not supported by skiff yet (HostConfig.SecurityOpt)"


class SecurityOptions(Record):
    """What a container's SecurityOpt asks for."""

    seccomp: str = ""              # "" or "builtin": the default; "unconfined"; else JSON
    no_new_privileges: bool = False


def _bool(text: str) -> bool | None:
    """Go's strconv.ParseBool."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


def parse_security_opts(opts: Sequence[str] | None) -> SecurityOptions:
    """The options of a container; Docker's 400 for a malformed or unknown one."""
    seccomp, nnp = "", False
    for opt in opts or ():
        if opt == "no-new-privileges":
            nnp = True
            continue
        if opt == "disable":
            continue  # the label option's short form
        if "=" in opt:
            key, _, value = opt.partition("=")
        elif ":" in opt:
            key, _, value = opt.partition(":")
        else:
            raise InvalidArgument(f"invalid --security-opt 1: {opt!r}")
        if key == "seccomp":
            seccomp = value
        elif key == "no-new-privileges":
            parsed = _bool(value)
            if parsed is None:
                raise InvalidArgument(f"invalid --security-opt 2: {opt!r}")
            nnp = parsed
        elif key == "apparmor":
            if value != UNCONFINED:
                raise InvalidArgument(f"the AppArmor profile {value!r}{_NOT_YET}")
        elif key == "label":
            if value != "disable":
                raise InvalidArgument(f"the SELinux label option {value!r}{_NOT_YET}")
        else:
            raise InvalidArgument(f"invalid --security-opt 2: {opt!r}")
    return SecurityOptions(seccomp=seccomp, no_new_privileges=nnp)


def seccomp_profile(host_config: dict[str, Any]) -> str | None:
    """The Docker-format profile JSON a container runs under (None: the built-in one), or
    ``unconfined`` when it has none: asked for, or ``--privileged`` (as Docker)."""
    wanted = parse_security_opts(host_config.get("SecurityOpt")).seccomp
    if wanted == UNCONFINED or host_config.get("Privileged"):
        return UNCONFINED
    if wanted in ("", BUILTIN):
        return None
    return wanted


def check_security_opts(opts: Sequence[str] | None) -> None:
    """Refuse at create what the start would: a bad option, or a profile that does not
    decode or convert (Docker only finds out at start)."""
    wanted = parse_security_opts(opts).seccomp
    if wanted not in ("", BUILTIN, UNCONFINED):
        from skiff.engine.seccomp_profile import convert, decode_profile

        convert(decode_profile(wanted), ())


def no_new_privileges(host_config: dict[str, Any]) -> bool:
    return parse_security_opts(host_config.get("SecurityOpt")).no_new_privileges
