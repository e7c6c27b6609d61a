"""``--init``: a small init as the container's PID 1, as Docker runs docker-init.

Docker binds its init (tini, built static) read-only at /sbin/docker-init and runs
``/sbin/docker-init -- <the container's command>``, so that signals reach the program and
orphans are reaped. skiff uses the same tini: ``docker-init`` where Docker is installed,
else Debian's ``tini-static`` (package ``tini``). It must be static: the image may have no
libc at all (busybox).
"""

from __future__ import annotations

import shutil

from skiff.errors import InvalidArgument

INIT_PATH = "/sbin/docker-init"
_CANDIDATES = ("docker-init", "tini-static")
_SEARCH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def init_binary() -> str:
    """The host path of the init to bind in; a clear 400 when none is installed."""
    for name in _CANDIDATES:
        found = shutil.which(name, path=_SEARCH)
        if found:
            return found
    raise InvalidArgument("--init: no init binary found (docker-init or tini-static); "
                          "install Debian's tini package")


def wants_init(host_config: dict[str, object]) -> bool:
    return bool(host_config.get("Init"))
