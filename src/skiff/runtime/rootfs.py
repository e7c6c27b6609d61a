"""Build a container's filesystem view inside its new mount namespace, then pivot into it.

Runs in the container's init process, in runc's order: make the host's mounts slaves so
nothing leaks back, bind the rootfs onto itself, mount the spec's mounts (every target
resolved inside the rootfs by `secure_path`), create /dev, pivot_root and drop the old
root. After the pivot, `finalize` writes sysctls, masks and write-protects the configured
paths and makes the root read-only when asked. Any failure raises `KernelError` naming the
call and the path, and the caller's process dies with it, taking its mount namespace along:
nothing of this is ever visible on the host.
"""

from __future__ import annotations

import errno
import os
import stat

from skiff.errors import KernelError, SpecError
from skiff.kernel import syscall as sc
from skiff.oci.runtime_spec import Device, Mount, Spec
from skiff.runtime import copy_up, mount_options
from skiff.runtime.devices import DEFAULT_DEVICES
from skiff.runtime.secure_path import make_target, pin, secure_join
from skiff.log import logger

TYPE_CHECKING = False  # type checkers take it as True; no typing import at run time
if TYPE_CHECKING:
    from typing import Callable

log = logger("skiff.runtime")

_DEV_LINKS = (("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
              ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr"),
              ("pts/ptmx", "/dev/ptmx"))
# statvfs bits -> mount flags that a bind remount must keep (the kernel locks them in a userns)
_LOCKED = ((os.ST_RDONLY, sc.MS_RDONLY), (os.ST_NOSUID, sc.MS_NOSUID), (os.ST_NODEV, sc.MS_NODEV),
           (os.ST_NOEXEC, sc.MS_NOEXEC), (os.ST_NOATIME, sc.MS_NOATIME),
           (os.ST_NODIRATIME, sc.MS_NODIRATIME), (os.ST_RELATIME, sc.MS_RELATIME))


def _locked_flags(path: str) -> int:
    f = os.statvfs(path).f_flag
    return sum(flag for bit, flag in _LOCKED if f & bit)


def _pinned(root: str, target: str, call: Callable[[str], None]) -> None:
    """`call` on /proc/self/fd/N of `target` pinned inside `root` (see `secure_path.pin`),
    so no path is resolved twice; errors name the target, not the fd's path."""
    fd = pin(root, target)
    try:
        call(f"/proc/self/fd/{fd}")
    except KernelError as e:
        raise KernelError(e.call, e.errno, target, e.detail) from None
    finally:
        os.close(fd)


def mount_onto(root: str, target: str, source: str | None, fstype: str | None, flags: int,
               data: str | None = None) -> None:
    """mount(2) onto `target`, pinned inside `root`."""
    _pinned(root, target, lambda at: sc.mount(source, at, fstype, flags, data))


def remount_onto(root: str, target: str, flags: int) -> None:
    """`remount_bind` of the mount on `target`, pinned inside `root`: a link swapped in
    after the mount cannot move the new flags to another mount."""
    _pinned(root, target, lambda at: remount_bind(at, flags))


def _propagation(flags: int) -> Callable[[str], None]:
    return lambda at: sc.mount(None, at, None, flags)


def remount_bind(path: str, flags: int) -> None:
    """Change a bind mount's flags; in a user namespace the kernel refuses to clear locked
    flags (nosuid, nodev, …), so on EPERM try again keeping the ones it has."""
    base = sc.MS_BIND | sc.MS_REMOUNT
    try:
        sc.mount(None, path, None, base | flags)
    except KernelError as e:
        if e.errno != errno.EPERM:
            raise
        sc.mount(None, path, None, base | flags | _locked_flags(path))


class RootfsBuilder:
    """What init does to the mount namespace; one instance per container start."""

    def __init__(self, spec: Spec, bundle: str, cgroup_mounts: list, userns: bool,
                 cgroupns: bool, idmap_trees: dict[int, int] | None = None) -> None:
        assert spec.root is not None and spec.linux is not None
        self.spec = spec
        self.linux = spec.linux
        self.bundle = bundle
        self.rootfs = os.path.realpath(os.path.join(bundle, spec.root.path))
        self.cgroup_mounts = cgroup_mounts
        self.userns = userns
        self.cgroupns = cgroupns
        self.own_dev = True  # /dev made here, not bound from the spec's mounts (prepare)
        self.idmap_trees = idmap_trees or {}  # mount index -> its idmapped clone (detached)

    # -- before pivot_root ------------------------------------------------------------
    def prepare(self, cgroup_ready: Callable[[], None]) -> None:
        """Everything before the pivot; `cgroup_ready` is called (and must return once
        the container's cgroup exists) before the first cgroup mount."""
        self._cgroup_ready = cgroup_ready
        # how the copy of the host's tree hears from the host; an unbindable root is a
        # private one (the rootfs could not be bound out of an unbindable "/"), made
        # unbindable once it is the root (`_root_propagation`)
        prop = self.linux.rootfs_propagation or "rslave"
        prop = "rprivate" if prop in ("unbindable", "runbindable") else prop
        sc.mount(None, "/", None, mount_options.propagation_flags(prop))
        try:  # the real errno: a remapped root barred from a folder above it gets EACCES
            is_dir = stat.S_ISDIR(os.stat(self.rootfs).st_mode)
        except OSError as e:
            raise KernelError.from_os("stat rootfs", e, self.rootfs) from e
        if not is_dir:
            raise KernelError("stat rootfs", errno.ENOTDIR, self.rootfs)
        self._make_parent_private()
        sc.mount(self.rootfs, self.rootfs, None, sc.MS_BIND | sc.MS_REC)
        dev_bound = False
        for i, m in enumerate(self.spec.mounts):
            self.mount(m, self.idmap_trees.get(i))
            if m.target.rstrip("/") == "/dev" and mount_options.parse(m.options).is_bind:
                dev_bound = True
        self.own_dev = not dev_bound
        if self.own_dev:
            self.create_devices()

    def _make_parent_private(self) -> None:
        """runc's rootfsParentMountPrivate: if the mount holding the rootfs is still shared
        (a non-recursive or shared rootfsPropagation, an overlay `merged` dir under a shared
        mount), our binds and mounts would propagate to its host peers, and pivot_root
        refuses a shared parent. Found in mountinfo: os.path.ismount misses binds. The
        rootfs itself counts, as in runc's getParentMount: a rootfs that is a mount of its
        own (an overlay) under an rshared ``/`` would give its self-bind a shared peer, and
        pivot_root refuses a shared new root as well."""
        parent = self.rootfs
        best, shared = "", False
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                point = fields[4].replace("\\040", " ")
                if (parent == point or parent.startswith(point.rstrip("/") + "/")) \
                        and len(point) >= len(best):
                    best = point
                    optional = fields[6:fields.index("-")]
                    shared = any(o.startswith("shared:") for o in optional)
        if best and shared:
            sc.mount(None, best, None, sc.MS_PRIVATE)

    def mount(self, m: Mount, idmap_tree: int | None = None) -> None:
        opts = mount_options.parse(m.options)
        kind = m.type or ("bind" if opts.is_bind else "")
        if kind == "cgroup" or kind == "cgroup2":
            self._cgroup_ready()
            self._mount_cgroup(m, opts)
        elif opts.is_bind or kind == "bind":
            self._mount_bind(m, opts, idmap_tree)
        else:
            target = make_target(self.rootfs, m.target, is_dir=True)
            # tmpcopyup: the folder the tmpfs hides, held open to copy from once it is on
            below = copy_up.open_dir(target) if "tmpcopyup" in m.options else -1
            try:
                mount_onto(self.rootfs, target, m.source or kind, kind, opts.flags, opts.data or None)
                if below >= 0:
                    fd = pin(self.rootfs, target)
                    try:
                        top = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                    finally:
                        os.close(fd)
                    try:
                        copy_up.copy_tree(below, top, m.target)
                    finally:
                        os.close(top)
            except KernelError as e:
                # in a user namespace without its own netns/ipcns the kernel refuses a new
                # sysfs/mqueue; runc binds the host's instead
                fallback = {"sysfs": "/sys", "mqueue": "/dev/mqueue"}.get(kind)
                if e.errno != errno.EPERM or fallback is None:
                    raise
                mount_onto(self.rootfs, target, fallback, None, sc.MS_BIND | sc.MS_REC)
                remount_onto(self.rootfs, target, opts.flags & mount_options.BIND_REMOUNT_FLAGS)
            finally:
                if below >= 0:
                    os.close(below)
        for prop in opts.propagation:
            _pinned(self.rootfs, secure_join(self.rootfs, m.target), _propagation(prop))
        if opts.attr_set or opts.attr_clr:  # rro, rnosuid, …: the whole new tree at once
            fd = pin(self.rootfs, secure_join(self.rootfs, m.target))
            try:
                sc.mount_setattr(fd, opts.attr_set, opts.attr_clr,
                                 flags=sc.AT_EMPTY_PATH | sc.AT_RECURSIVE, what=m.target)
            finally:
                os.close(fd)

    def _source(self, m: Mount) -> str:
        if not m.source:
            raise SpecError(f"mounts[{m.target}].source", "a bind mount needs a source")
        return m.source if m.source.startswith("/") else os.path.join(self.bundle, m.source)

    def _mount_bind(self, m: Mount, opts: mount_options.MountOptions,
                    idmap_tree: int | None = None) -> None:
        source = self._source(m)
        try:
            is_dir = stat.S_ISDIR(os.stat(source).st_mode)
        except OSError as e:
            raise KernelError.from_os("stat bind source", e, source) from None
        target = make_target(self.rootfs, m.target, is_dir)
        if idmap_tree is not None:
            self._attach(idmap_tree, target)
        else:
            mount_onto(self.rootfs, target, source, None, opts.flags & (sc.MS_BIND | sc.MS_REC))
        extra = opts.flags & mount_options.BIND_REMOUNT_FLAGS
        if extra:
            remount_onto(self.rootfs, target, extra)

    def _attach(self, tree: int, target: str) -> None:
        """Attach a detached mount made by the runtime (`idmapped_trees`) onto the pinned
        target."""
        fd = pin(self.rootfs, target)
        try:
            sc.move_mount(tree, fd, what=target)
        finally:
            os.close(fd)

    def _mount_cgroup(self, m: Mount, opts: mount_options.MountOptions) -> None:
        target = make_target(self.rootfs, m.target, is_dir=True)
        flags = opts.flags | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC
        layout = self.cgroup_mounts
        if len(layout) == 1 and layout[0].fstype == "cgroup2":
            self._cgroup_fs(layout[0], target, flags)
            return
        # v1 (or hybrid): a tmpfs holding one directory per hierarchy, as on the host
        mount_onto(self.rootfs, target, "tmpfs", "tmpfs", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC,
                   "mode=755")
        for cm in layout:
            sub = os.path.join(target, cm.name)
            os.makedirs(sub, exist_ok=True)
            self._cgroup_fs(cm, sub, flags)
            for alias in cm.aliases:
                os.symlink(cm.name, os.path.join(target, alias))
        if flags & sc.MS_RDONLY:
            remount_onto(self.rootfs, target, flags)

    def _cgroup_fs(self, cm, target: str, flags: int) -> None:
        # with a cgroup namespace a fresh mount shows the container's own cgroup as root;
        # without one (or in a userns, where v1 mounts are refused) bind the host's directory
        if self.cgroupns and not self.userns:
            try:
                mount_onto(self.rootfs, target, "cgroup", cm.fstype, flags, cm.data or None)
                return
            except KernelError as e:
                if e.errno not in (errno.EPERM, errno.EBUSY):
                    raise
        mount_onto(self.rootfs, target, cm.host_path, None, sc.MS_BIND | sc.MS_REC)
        remount_onto(self.rootfs, target, flags & mount_options.BIND_REMOUNT_FLAGS)

    def create_devices(self) -> None:
        old = os.umask(0)
        try:
            for dev in DEFAULT_DEVICES:
                self._device(dev)
            for i, dev in enumerate(self.linux.devices):
                self._refuse_other_file(dev, f"linux.devices[{i}]")
                self._device(dev)
            for src, dst in _DEV_LINKS:
                path = secure_join(self.rootfs, dst)
                if not os.path.lexists(path):
                    os.symlink(src, path)
            if os.path.exists("/proc/kcore"):
                path = secure_join(self.rootfs, "/dev/core")
                if not os.path.lexists(path):
                    os.symlink("/proc/kcore", path)
        finally:
            os.umask(old)

    def _refuse_other_file(self, dev: Device, where: str) -> None:
        """config-linux.md: "If a file already exists at path that does not match the
        requested device, the runtime MUST generate an error" (the same node is replaced)."""
        path = secure_join(self.rootfs, dev.path)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[dev.type]
        same = stat.S_IFMT(st.st_mode) == kind and (
            dev.type == "p" or st.st_rdev == os.makedev(dev.major or 0, dev.minor or 0))
        if not same:
            raise SpecError(f"{where}.path", f"{dev.path} exists in the rootfs and is not that device")

    def _device(self, dev: Device) -> None:
        target = make_target(self.rootfs, os.path.dirname(dev.path), is_dir=True)
        path = os.path.join(target, os.path.basename(dev.path))
        kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[dev.type]
        mode = dev.file_mode if dev.file_mode is not None else 0o666
        rdev = os.makedev(dev.major or 0, dev.minor or 0)
        if os.path.lexists(path):
            os.unlink(path)
        if not self.userns:
            try:
                os.mknod(path, kind | (mode & 0o7777), rdev)
                os.chown(path, dev.uid or 0, dev.gid or 0)
                return
            except PermissionError:
                pass
            except OSError as e:
                raise KernelError.from_os("mknod", e, path) from None
        # a user namespace may not make device nodes: bind the host's node instead
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
        mount_onto(self.rootfs, path, dev.path, None, sc.MS_BIND)

    # -- the switch ------------------------------------------------------------------
    def pivot(self, no_pivot: bool) -> None:
        if no_pivot:
            os.chdir(self.rootfs)
            sc.mount(self.rootfs, "/", None, sc.MS_MOVE)
            os.chroot(".")
            os.chdir("/")
            self._root_propagation()
            return
        old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        new_root = os.open(self.rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fchdir(new_root)
            # pivot_root(".", ".") stacks the old root on top of the new one; detach it
            sc.pivot_root(".", ".")
            os.fchdir(old_root)
            sc.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC)
            sc.umount(".", sc.MNT_DETACH)
            os.chdir("/")
        finally:
            os.close(old_root)
            os.close(new_root)
        self._root_propagation()

    def _root_propagation(self) -> None:
        """linux.rootfsPropagation is the propagation of the container's root mount: set on
        "/" once it is the root, as runc does (before the pivot it only picked how the copy
        of the host's tree hears from the host); unset, the root keeps what it got."""
        prop = self.linux.rootfs_propagation
        if prop:
            sc.mount(None, "/", None, mount_options.propagation_flags(prop))

    # -- after pivot_root ------------------------------------------------------------
    def finalize(self) -> None:
        if self.own_dev:
            self._reopen_dev_null()
        for key, value in self.linux.sysctl.items():
            path = "/proc/sys/" + key.replace(".", "/")
            try:
                with open(path, "w") as f:
                    f.write(value)
            except OSError as e:
                raise KernelError.from_os(f"write sysctl {key}", e, path) from None
        for path in self.linux.readonly_paths:
            self._readonly(path)
        if self.linux.masked_paths:
            null = _null_device()
            try:
                for path in self.linux.masked_paths:
                    self._mask(path, null)
            finally:
                os.close(null)
        if self.spec.root and self.spec.root.readonly:
            remount_bind("/", sc.MS_RDONLY)

    @staticmethod
    def _reopen_dev_null() -> None:
        """Stdio given as the host's /dev/null becomes the container's own, read-write, as
        runc's reOpenDevNull does: containerd's shim hands the runtime a read-only one for
        a task without IO (`ctr run --null-io`), and the program's writes to it would fail
        with EBADF."""
        try:
            fd = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        except OSError as e:
            raise KernelError.from_os("open", e, "/dev/null") from None
        try:
            null = os.fstat(fd).st_rdev
            for std in (0, 1, 2):
                try:
                    st = os.fstat(std)
                except OSError:
                    continue  # closed: nothing to reopen
                if stat.S_ISCHR(st.st_mode) and st.st_rdev == null:
                    os.dup2(fd, std)  # inheritable, as stdio is
        finally:
            os.close(fd)

    @staticmethod
    def _readonly(path: str) -> None:
        try:
            sc.mount(path, path, None, sc.MS_BIND | sc.MS_REC)
        except KernelError as e:
            if e.errno == errno.ENOENT:
                return
            raise
        remount_bind(path, sc.MS_RDONLY | sc.MS_REC)

    @staticmethod
    def _mask(path: str, null: int) -> None:
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                sc.mount("tmpfs", path, "tmpfs", sc.MS_RDONLY)
            else:
                sc.mount(f"/proc/self/fd/{null}", path, None, sc.MS_BIND)
        except KernelError as e:
            if e.errno not in (errno.ENOENT, errno.ENOTDIR):
                raise


def idmapped_trees(spec: Spec, bundle: str) -> dict[int, int]:
    """For each idmapped mount (by its index), a detached clone of its source carrying the
    mapping — its own, or else the container's (config.md lets a runtime use that one).
    Made here in the runtime, before the fork, as runc makes them: setting a mapping needs
    privilege over the source's filesystem, which an init in a user namespace lacks; it
    only attaches the clone. The caller closes the fds (the init holds copies)."""
    from skiff.kernel.idmap import userns_fd  # (a fork: only when asked for)

    assert spec.linux is not None
    trees: dict[int, int] = {}
    try:
        for i, m in enumerate(spec.mounts):
            if not m.idmapped:
                continue
            uids = m.uid_mappings if m.uid_mappings is not None else spec.linux.uid_mappings
            gids = m.gid_mappings if m.gid_mappings is not None else spec.linux.gid_mappings
            source = m.source or ""
            source = source if source.startswith("/") else os.path.join(bundle, source)
            rec = sc.AT_RECURSIVE if mount_options.parse(m.options).flags & sc.MS_REC else 0
            tree = sc.open_tree(source, sc.OPEN_TREE_CLONE | sc.OPEN_TREE_CLOEXEC | rec)
            trees[i] = tree
            ns = userns_fd([(x.container_id, x.host_id, x.size) for x in uids or ()],
                           [(x.container_id, x.host_id, x.size) for x in gids or ()])
            try:
                sc.mount_setattr(tree, sc.MOUNT_ATTR_IDMAP, what=source, userns_fd=ns,
                                 flags=sc.AT_EMPTY_PATH
                                 | (sc.AT_RECURSIVE if m.idmapped == "ridmap" else 0))
            finally:
                os.close(ns)
    except BaseException:
        for fd in trees.values():
            os.close(fd)
        raise
    return trees


def _null_device() -> int:
    """An O_PATH fd on the container's /dev/null, checked to be the null device (1:3), for
    the masks to be bound from. A /dev from the bundle or a volume may hold anything there:
    a link to /proc/sys/kernel/core_pattern, say, would put the host's setting where a
    mask should be (runc's CVE-2025-31133); the fd keeps the checked node for every mask."""
    try:
        fd = os.open("/dev/null", os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise KernelError.from_os("open the masks' /dev/null", e, "/dev/null") from None
    st = os.fstat(fd)
    if not stat.S_ISCHR(st.st_mode) or st.st_rdev != os.makedev(1, 3):
        os.close(fd)
        raise KernelError("mask with /dev/null", errno.ENODEV, "/dev/null",
                          "(not the null device 1:3: a link or another file)")
    return fd
