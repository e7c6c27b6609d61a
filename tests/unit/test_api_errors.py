"""The one table from skiff's errors to HTTP status codes (moby's errdefs mapping)."""

from __future__ import annotations

import pytest

from skiff import errors
from skiff.api.errors import STATUS, error_body, message_of, status_of
from skiff.oci.image_spec import PlatformNotFound


@pytest.mark.parametrize("exc,status", [
    (errors.ImageNotFound("busybox:latest"), 404),
    (errors.ManifestUnknown("manifest unknown", 404, "MANIFEST_UNKNOWN"), 404),
    (errors.ContainerNotFound("abc"), 404),
    (errors.ImageConflict("conflict: unable to delete"), 409),
    (errors.ContainerExists("abc"), 409),
    (errors.InvalidState("abc", "start", "running"), 409),
    (errors.ReferenceError_("invalid reference format"), 400),
    (errors.InvalidArgument("invalid filter 'x'"), 400),
    (errors.SpecError("config.Cmd", "expected a list"), 400),
    (PlatformNotFound("manifests", "no image for linux/s390x"), 400),  # a SpecError
    (errors.InvalidDigest("sha256:x", "bad digest"), 400),
    (errors.ArchiveError("no manifest.json"), 400),
    (errors.AuthenticationFailed("unauthorized", 401), 401),
    (errors.RegistryError("bad gateway", 502), 500),
    (errors.TransferError("connection reset"), 500),
    (errors.StoreError("disk full"), 500),
    (errors.LayerError("entry escapes", "../x"), 500),
    (errors.KernelError("mount", 1, "/x"), 500),
    (ValueError("a bug"), 500),
])
def test_status_by_class_then_by_base(exc: BaseException, status: int) -> None:
    assert status_of(exc) == status


def test_leaves_are_more_precise_than_their_branches() -> None:
    assert issubclass(errors.ManifestUnknown, errors.RegistryError)
    assert errors.RegistryError not in STATUS  # so the leaf decides, the rest is 500
    assert all(issubclass(cls, errors.SkiffError) for cls in STATUS)


def test_body_is_dockers_message_object() -> None:
    e = errors.ImageNotFound("nope:latest")
    assert error_body(e) == {"message": "No such image: nope:latest"}
    assert message_of(RuntimeError()) == "RuntimeError"  # never an empty message
