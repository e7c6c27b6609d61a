"""The one table from skiff's errors to HTTP status codes, as moby's errdefs maps its own.

An error is looked up by its class and then its bases, so a leaf can be more precise than
its branch (`ManifestUnknown` is 404 while other `RegistryError`s are 500). Anything not in
the table — a bug, an I/O failure — is a 500. A failed container start goes by its exit
code, as moby's translateContainerdStartErr: 400 for a program not found or not runnable. The body is always Docker's
``{"message": "…"}``, which the docker CLI prints after ``Error response from daemon:``.
"""

from __future__ import annotations

from skiff.errors import (
    ArchiveError,
    AuthenticationFailed,
    CapsuleConflict,
    ContainerConflict,
    ContainerExists,
    ContainerNotFound,
    ContainerStartError,
    ImageConflict,
    ImageNotFound,
    InvalidArgument,
    InvalidDigest,
    InvalidState,
    ManifestUnknown,
    NoSuchCapsule,
    NoSuchContainer,
    NoSuchExec,
    NoSuchVolume,
    NoSuchNetwork,
    NetworkConflict,
    NetworkForbidden,
    PathNotFound,
    PortAllocated,
    ReferenceError_,
    SpecError,
    UsageError,
)

STATUS: dict[type[BaseException], int] = {
    ImageNotFound: 404,          # errdefs.NotFound
    ManifestUnknown: 404,
    ContainerNotFound: 404,
    NoSuchContainer: 404,
    NoSuchExec: 404,
    NoSuchVolume: 404,
    NoSuchNetwork: 404,
    NetworkForbidden: 403,       # errdefs.Forbidden
    NetworkConflict: 409,
    NoSuchCapsule: 404,
    PathNotFound: 404,
    ImageConflict: 409,          # errdefs.Conflict
    ContainerExists: 409,
    ContainerConflict: 409,
    CapsuleConflict: 409,
    InvalidState: 409,
    ReferenceError_: 400,        # errdefs.InvalidParameter
    InvalidArgument: 400,
    InvalidDigest: 400,
    SpecError: 400,
    UsageError: 400,
    ArchiveError: 400,
    AuthenticationFailed: 401,   # errdefs.Unauthorized
    PortAllocated: 500,          # moby: a start's "driver failed programming external connectivity"
}
NOT_FOUND_PAGE = "page not found"


def status_of(exc: BaseException) -> int:
    if isinstance(exc, ContainerStartError):
        # moby's translateContainerdStartErr: a program not found or not runnable (127,
        # 126) is the caller's mistake, anything else the daemon's
        return 400 if exc.exit_code in (126, 127) else 500
    for cls in type(exc).__mro__:
        status = STATUS.get(cls)
        if status is not None:
            return status
    return 500


def message_of(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def error_body(exc: BaseException) -> dict[str, str]:
    return {"message": message_of(exc)}
