"""The one exception tree of skiff: every layer raises a subclass of `SkiffError`.

Callers catch the root to report any failure, or a leaf to handle one case. A kernel
error carries the call, the path it was about and the errno, so a message reads like
crun's: ``mount `/proc` on `/tmp/rootfs/proc`: EPERM (Operation not permitted)``.

    SkiffError
     +-- SpecError                 a config.json / spec document is malformed (names the field)
     +-- KernelError               a system call failed (call, path, errno)
     +-- RuntimeError_             the OCI runtime refused or failed an operation
     |    +-- ContainerNotFound
     |    +-- ContainerExists
     |    +-- InvalidState         an illegal move in the container state machine
     |    +-- HookFailed
     +-- CgroupError               a cgroup could not be made, set or removed
     +-- UsageError                a command line is malformed (or asked for --help)
     +-- StoreError                the content store refused or failed an operation
          +-- InvalidDigest        a digest string is malformed, or of an algorithm not supported
          +-- BlobNotFound         no blob with that digest is stored
          +-- DigestMismatch       written content is not what its expected digest or size said
          +-- ReferenceError_      an image reference is malformed (Docker's message)
          +-- LayerError           a layer archive is corrupt, truncated or hostile (names the entry)
          +-- ImageNotFound        no image has that reference or ID (Docker's `No such image: …`)
          +-- ImageConflict        an image cannot be removed or replaced as asked (Docker's 409)
          +-- ArchiveError         an image archive (docker-archive, OCI layout) is malformed
     +-- RegistryError             a registry refused or failed a request (`status`: its HTTP code)
     |    +-- AuthenticationFailed credentials missing or refused (401/403, or the token service)
     |    +-- ManifestUnknown      the registry has no such repository, tag or digest
     |    +-- TransferError        the connection broke or timed out, after the retries
     +-- InvalidArgument           a request (API parameter, CLI value) is malformed
     +-- NoSuchContainer           the engine has no container of that ID, prefix or name
     |                             (Docker's `No such container: …`, 404)
     +-- NoSuchVolume              no volume has that name (Docker's `get …: no such volume`, 404)
     +-- NoSuchNetwork             no network has that name, ID or ID prefix (`network … not found`, 404)
     +-- NetworkConflict           a network's name, subnet or address is taken, or its state
     |                             forbids the operation (409)
     +-- NetworkForbidden          a pre-defined network cannot be changed, or one with active
     |                             endpoints removed (Docker's 403)
     +-- NoSuchCapsule             no capsule has that name, version, or a version in the range (404)
     +-- CapsuleConflict           a capsule cannot be made, removed or resolved as asked: a
     |    |                        name:version taken by other content, one in use or depended
     |    |                        on, requirements no one version satisfies (409)
     |    +-- CapsuleCycle         the capsules' dependencies go round in a circle
     +-- ContainerConflict         the container's state or name forbids the operation (a name in
     |                             use, removing a running container, killing a stopped one; 409)
     +-- PathNotFound              a path asked of a container's files is not there (404)
     +-- NoSuchExec                the engine has no exec instance of that ID (Docker's `No such
     |                             exec instance: …`, 404)
     +-- ContainerStartError       a container's program could not be started (`exit_code`: 127 not
     |                             found, 126 not runnable, 125 anything else, as `docker run`)
     +-- APIError                  the Engine API answered with an error (`status`); prints as the
     |    |                        docker CLI prints it: ``Error response from daemon: …``
     |    +-- NotFound             the engine has no such object (404)
     +-- DaemonUnreachable         nothing answers at the engine's address (Docker's ``Cannot
     |                             connect to the Docker daemon at …`` text)
     +-- FirewallError             nft refused a ruleset batch (its own message kept)
     +-- PortAllocated             a published host port is taken (Docker's ``Bind for
                                   0.0.0.0:8080 failed: port is already allocated``)
"""

from __future__ import annotations

import errno as _errno
import os


class SkiffError(Exception):
    """Root of every error skiff raises on purpose."""


class SpecError(SkiffError):
    """A spec document is malformed; `field` is the dotted path of the offending field."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}" if field else problem)


class KernelError(SkiffError):
    """A system call failed: which call, about which path, with which errno."""

    def __init__(self, call: str, errno: int, path: str | None = None, detail: str = "") -> None:
        self.call = call
        self.errno = errno
        self.path = path
        self.detail = detail
        name = _errno.errorcode.get(errno, str(errno))
        where = f" `{path}`" if path else ""
        extra = f" {detail}" if detail else ""
        super().__init__(f"{call}{where}{extra}: {name} ({os.strerror(errno)})")

    @classmethod
    def from_os(cls, call: str, exc: OSError, path: str | None = None) -> KernelError:
        return cls(call, exc.errno or _errno.EIO, path if path is not None else exc.filename)


class RuntimeError_(SkiffError):
    """The OCI runtime refused or failed an operation (named with a trailing _ to keep
    Python's builtin RuntimeError usable)."""


class ContainerNotFound(RuntimeError_):
    def __init__(self, container_id: str) -> None:
        super().__init__(f"container `{container_id}` does not exist")


class ContainerExists(RuntimeError_):
    def __init__(self, container_id: str) -> None:
        super().__init__(f"container `{container_id}` already exists")


class InvalidState(RuntimeError_):
    """An operation is not allowed in the container's current state."""

    def __init__(self, container_id: str, operation: str, status: str, hint: str = "") -> None:
        self.status = status
        tail = f": {hint}" if hint else ""
        super().__init__(f"cannot {operation} container `{container_id}` in state {status}{tail}")


class HookFailed(RuntimeError_):
    pass


class CgroupError(SkiffError):
    pass


class InvalidArgument(SkiffError):
    """A request is malformed: an API query parameter or body, a filter, a --change line."""


class NoSuchContainer(SkiffError):
    """No container answers to `reference` (an ID, a unique ID prefix or a name, as the user
    gave it); the message is Docker's."""

    def __init__(self, reference: str) -> None:
        self.reference = reference
        super().__init__(f"No such container: {reference}")


class NoSuchVolume(SkiffError):
    """No volume has that name; the message is Docker's (``get NAME: no such volume``)."""


class NoSuchNetwork(SkiffError):
    """No network answers to `reference`; the message is Docker's (``network X not found``)."""

    def __init__(self, reference: str) -> None:
        self.reference = reference
        super().__init__(f"network {reference} not found")


class NetworkConflict(SkiffError):
    """A network operation conflicts with what exists: a name taken, a subnet that
    overlaps another network's, an address in use (Docker's 409)."""


class NetworkForbidden(SkiffError):
    """What Docker answers 403 to: a pre-defined network (``bridge``, ``host``, ``none``)
    removed or misused, a network with active endpoints removed."""


class NoSuchCapsule(SkiffError):
    """No stored capsule answers to what was asked (a name, a name:version, or a range no
    stored version of the name satisfies); the message names it and what there is."""


class CapsuleConflict(SkiffError):
    """A capsule operation conflicts with what is stored: `sides` are the two things in
    conflict (two requirements, a name:version and its other content, a capsule and its
    users), each as a user would write it, so the message can name both."""

    def __init__(self, message: str, sides: tuple[str, ...] = ()) -> None:
        self.sides = sides
        super().__init__(message)


class CapsuleCycle(CapsuleConflict):
    """Capsules require each other in a circle; `sides` is the circle, first to last."""


class PathNotFound(SkiffError):
    """A path in a container's files does not exist (``docker cp``); the message is
    Docker's ``Could not find the file … in container …``."""


class ContainerConflict(SkiffError):
    """The container cannot do that now, or its name is taken; the message is Docker's
    (``You cannot remove a running container …``, ``Conflict. The container name …``)."""


class NoSuchExec(SkiffError):
    """No exec instance has the ID `exec_id` (exec IDs are matched whole, as dockerd's)."""

    def __init__(self, exec_id: str) -> None:
        self.exec_id = exec_id
        super().__init__(f"No such exec instance: {exec_id}")


class ContainerStartError(SkiffError):
    """A container did not start; the message is Docker's (``OCI runtime create failed: …``)
    and `exit_code` what `docker run` exits with for it: 127 when the program is not found,
    126 when it cannot be run, 125 for the rest."""

    def __init__(self, message: str, exit_code: int = 125) -> None:
        self.exit_code = exit_code
        super().__init__(message)


class UsageError(SkiffError):
    """A malformed command line; `help` is set when the user asked for the usage text."""

    def __init__(self, message: str, help: bool = False) -> None:
        self.help = help
        super().__init__(message)


class StoreError(SkiffError):
    """The content store (blobs, layers, references, volumes) refused or failed an operation."""


class InvalidDigest(StoreError):
    """A digest string is not ``sha256:<64 lowercase hex>``; `digest` is the text given."""

    def __init__(self, digest: str, problem: str) -> None:
        self.digest = digest
        super().__init__(problem)


class BlobNotFound(StoreError):
    def __init__(self, digest: str) -> None:
        self.digest = digest
        super().__init__(f"blob {digest} not found")


class DigestMismatch(StoreError):
    """Content did not hash (or measure) to what was expected; nothing of it was kept.

    `what` is ``"digest"`` or ``"size"``; `expected` and `actual` are digests or byte counts.
    """

    def __init__(self, what: str, expected: str | int, actual: str | int,
                 digest: str | None = None) -> None:
        self.what = what
        self.expected = expected
        self.actual = actual
        if what == "size":
            about = f" of {digest}" if digest else ""
            message = f"blob size mismatch{about}: expected {expected} bytes, got {actual}"
        else:
            message = f"blob digest mismatch: expected {expected}, got {actual}"
        super().__init__(message)


class ReferenceError_(StoreError):
    """An image reference is malformed; the message is Docker's (named with a trailing _ to
    keep Python's builtin ReferenceError usable)."""


class LayerError(StoreError):
    """A layer could not be unpacked: the archive is corrupt, truncated or hostile.
    `entry` is the archive member's name when one entry is at fault."""

    def __init__(self, problem: str, entry: str | None = None) -> None:
        self.problem = problem
        self.entry = entry
        super().__init__(f"layer entry `{entry}`: {problem}" if entry is not None else problem)


class ImageNotFound(StoreError):
    """No stored image answers to `reference` (a name or an image ID, as the user gave it,
    names shown as Docker shows them); the message is Docker's."""

    def __init__(self, reference: str) -> None:
        self.reference = reference
        super().__init__(f"No such image: {reference}")


class ImageConflict(StoreError):
    """The image cannot be removed (or a name moved) as asked; the message is Docker's
    ``conflict: unable to delete …`` text."""


class ArchiveError(StoreError):
    """An image archive (docker-archive tar, OCI layout) is malformed or names content it
    does not hold; `member` is the archive member at fault, when one is."""

    def __init__(self, problem: str, member: str | None = None) -> None:
        self.member = member
        super().__init__(f"archive member `{member}`: {problem}" if member else problem)


class RegistryError(SkiffError):
    """A registry refused or failed a request. `status` is the HTTP status (None when no
    response came), `code` the distribution-spec error code (``MANIFEST_UNKNOWN``…)."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        self.status = status
        self.code = code
        super().__init__(message)


class AuthenticationFailed(RegistryError):
    """Credentials were needed and missing, or were refused (by the registry or its token
    service)."""


class ManifestUnknown(RegistryError):
    """The registry has no such repository, tag or digest."""


class TransferError(RegistryError):
    """The connection broke, was refused or timed out, and retrying did not help."""


class APIError(SkiffError):
    """The Engine API answered with an error status; `message` is the daemon's own text (its
    ``{"message": …}``), and the error prints as the docker CLI prints it."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        self.message = message
        super().__init__(f"Error response from daemon: {message}")


class NotFound(APIError):
    """The engine has no such object (HTTP 404)."""


class DaemonUnreachable(SkiffError):
    """Nothing answers at `host` (a unix socket or a TCP address); `detail` says why, when
    the reason is not simply that no daemon runs there."""

    def __init__(self, host: str, detail: str = "") -> None:
        self.host = host
        self.detail = detail
        super().__init__(detail or
                         f"Cannot connect to the Docker daemon at {host}. Is the docker daemon running?")


class FirewallError(SkiffError):
    """`nft` refused a batch; nothing of it was applied (a batch is one transaction)."""


class PortAllocated(SkiffError):
    """A host port asked for is held by another container or process; the message is Docker's."""
