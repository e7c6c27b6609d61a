"""Where container cgroups go: skiff's default, paths taken from the hierarchy root, and
the systemd `slice:prefix:name` form expanded the way systemd nests slices."""

from __future__ import annotations

import pytest

from skiff.errors import SpecError
from skiff.runtime.cgroups_path import cgroup_path, expand_slice


def test_default_and_plain_paths():
    assert cgroup_path(None, "c1") == "/skiff/c1"
    assert cgroup_path("/docker/abc", "c1") == "/docker/abc"
    assert cgroup_path("relative/x", "c1") == "relative/x"  # the driver roots it


@pytest.mark.parametrize("spec, path", [
    ("system.slice:docker:abc", "/system.slice/docker-abc.scope"),
    ("kubepods-burstable-pod12.slice:cri-containerd:ff",
     "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12.slice/cri-containerd-ff.scope"),
    ("-.slice:p:n", "/p-n.scope"),
    (":p:n", "/p-n.scope"),
])
def test_systemd_form(spec, path):
    assert cgroup_path(spec, "c1") == path


@pytest.mark.parametrize("bad", ["a--b.slice", "-a.slice", "a.slic", "a/b.slice"])
def test_bad_slices(bad):
    with pytest.raises(SpecError, match="cgroupsPath"):
        expand_slice(bad)
