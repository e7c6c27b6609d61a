"""The capsule half of the engine: create, list, inspect, remove, prune and resolve capsules.

`CapsuleService` answers skiff's ``/capsules`` routes over the `CapsuleStore`. A capsule is
made from host paths (each at its basename or the target given), from a folder's contents or
from a tar archive, with its name, semantic version, requirements (``name@range``) and
labels checked first, so that bad input changes nothing; a requirement that would close a
circle with the capsules stored is refused at create. `remove` is refused while a container
uses the capsule or while it is the only version that satisfies another capsule's
requirement, unless forced; `prune` removes every capsule no container uses and no kept
capsule requires (the closure of what is used stays), and says what it freed. Events are
the engine's, with Type ``capsule``: create, delete and prune.

What the container side (live attach, ``run --capsule``) gets from here:

- ``resolve(requests: list[str]) -> list[Resolved]``: ``name:version``, ``name@range`` or
  ``name`` requests, with the requirements of what they pick, resolved to one set (the
  highest versions that satisfy all; `capsule_resolve`), dependencies first, each a
  ``Resolved(name, version, digest, path)`` whose `path` is the capsule's verified,
  read-only unpacked folder on the host (unpacked at the first resolve). A conflict, a
  cycle, an unknown capsule or version raise `CapsuleConflict`, `CapsuleCycle` and
  `NoSuchCapsule`, naming both sides.
- ``users``: a callable the engine sets, returning for every container that uses capsules
  ``(container ID, [the "name:version" it uses])`` (attached, or to be attached at start);
  `remove` refuses and `prune` skips what it names (as `VolumeService.users`).
- ``detach``: a callable the engine sets, ``detach(ref, container_ids)``, which takes the
  capsule off those containers; a forced `remove` of a used capsule calls it first.
- ``lock``: held by `remove` and `prune` while they decide and delete; an attach that holds
  it from its `resolve` until the attachment is recorded cannot lose its folder to them.
"""

from __future__ import annotations

import os
import threading
import time

from skiff.engine.capsule_resolve import (Candidate, check_name, parse_request,
                                          parse_requires, resolve)
from skiff.errors import CapsuleConflict, CapsuleCycle, InvalidArgument, NoSuchCapsule
from skiff.record import Record
from skiff.semver import Range, Version
from skiff.store.capsules import CapsuleRecord, CapsuleStore

TYPE_CHECKING = False
if TYPE_CHECKING:
    import builtins
    from collections.abc import Callable, Iterable
    from typing import IO, Any

    from skiff.engine.events import EventLog
    from skiff.store.capsule_pack import PackEntry

LIST_FILTERS = ("name", "label", "digest")
PRUNE_FILTERS = ("label", "label!")


class Resolved(Record):
    """One capsule of a resolved set: what it is and its read-only folder on the host."""

    name: str
    version: str
    digest: str
    path: str

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"


def _string_map(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                              for k, v in value.items()):
        raise InvalidArgument(f"invalid {what}: expected an object of strings")
    return dict(value)


def split_path_spec(spec: str) -> tuple[str, str | None]:
    """``--path SRC[:TARGET]``: the host path and where it goes in the capsule."""
    source, colon, target = spec.partition(":")
    return source, (target or None) if colon else None


class CapsuleService:
    """The capsules under `root`, their events in `events`."""

    def __init__(self, root: str, events: EventLog | None = None) -> None:
        from skiff.engine.events import EventLog

        self.store = CapsuleStore(root)
        self.events = events or EventLog()
        self.users: Callable[[], builtins.list[tuple[str, builtins.list[str]]]] = list
        self.detach: Callable[[str, builtins.list[str]], None] | None = None
        self.lock = threading.RLock()

    # -- create ------------------------------------------------------------------------------
    def create(self, name: str, version: str, *,
               paths: Iterable[tuple[str, str | None]] | None = None,
               from_dir: str | None = None, archive: IO[bytes] | None = None,
               requires: Iterable[str] | dict[str, str] = (),
               labels: dict[str, str] | None = None) -> tuple[dict[str, Any], bool]:
        """A new capsule from exactly one of host `paths` (``(source, target or None)``),
        the folder `from_dir` or the tar `archive` (seekable): (its document, True), or
        (the stored one's, False) when ``name:version`` holds this content already."""
        from skiff.store import capsule_pack

        check_name(name)
        Version.parse(version)
        needs = parse_requires(requires)
        labels = _string_map(labels, "labels")
        if name in needs:
            raise CapsuleCycle(f"capsule dependency cycle: {name}:{version} requires itself "
                               f"({name}@{needs[name]})", (f"{name}:{version}",) * 2)
        given = [s for s in (paths, from_dir, archive) if s is not None]
        if len(given) != 1:
            raise InvalidArgument("a capsule is made from paths, a folder or a tar archive: "
                                  "give exactly one")
        self._check_cycle(name, version, needs)
        entries: builtins.list[PackEntry]
        if paths is not None:
            entries = capsule_pack.entries_from_paths(list(paths))
        elif from_dir is not None:
            entries = capsule_pack.entries_from_dir(from_dir)
        else:
            assert archive is not None
            entries = capsule_pack.entries_from_tar(archive)
        from skiff.engine.times import rfc3339_nano

        record, made = self.store.create(name, version, entries, requires=needs,
                                         labels=labels, created=rfc3339_nano(time.time()))
        if made:
            self._emit("create", record)
        return self._doc(record), made

    def create_from_body(self, body: Any) -> tuple[dict[str, Any], bool]:
        """``POST /capsules/create`` with a JSON body: ``Name``, ``Version``, ``Paths``
        (``"src[:target]"`` or ``{"Source", "Target"}``) or ``FromDir`` (paths on the
        daemon's host), ``Requires`` (``["name@range"]`` or ``{name: range}``), ``Labels``."""
        if not isinstance(body, dict):
            raise InvalidArgument("invalid JSON in the request body: expected an object")
        name, version = body.get("Name"), body.get("Version")
        if not isinstance(name, str) or not isinstance(version, str):
            raise InvalidArgument("a capsule needs a Name and a Version (strings)")
        paths = body.get("Paths")
        specs: list[tuple[str, str | None]] | None = None
        if paths is not None:
            if not isinstance(paths, list):
                raise InvalidArgument("invalid Paths: expected a list")
            specs = []
            for p in paths:
                if isinstance(p, str):
                    specs.append(split_path_spec(p))
                elif isinstance(p, dict) and isinstance(p.get("Source"), str):
                    specs.append((p["Source"], p.get("Target") or None))
                else:
                    raise InvalidArgument(f"invalid Paths entry {p!r}: expected "
                                          f"\"src[:target]\" or {{\"Source\", \"Target\"}}")
        from_dir = body.get("FromDir")
        if from_dir is not None and not isinstance(from_dir, str):
            raise InvalidArgument("invalid FromDir: expected a string")
        return self.create(name, version, paths=specs, from_dir=from_dir or None,
                           requires=self._requires_arg(body.get("Requires")),
                           labels=body.get("Labels"))

    @staticmethod
    def _requires_arg(value: Any) -> list[str] | dict[str, str]:
        if value is None:
            return []
        if isinstance(value, dict):
            return _string_map(value, "Requires")
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        raise InvalidArgument("invalid Requires: expected [\"name@range\"] or {name: range}")

    def _check_cycle(self, name: str, version: str, needs: dict[str, str]) -> None:
        """Refuse a requirement that closes a circle with what is stored (what is not
        stored yet cannot be part of one now)."""
        new = Candidate(name=name, version=Version.parse(version), digest="",
                        requires={n: Range.parse(r) for n, r in needs.items()})
        stored = self._catalog(self.store.all())

        def catalog(wanted: str) -> builtins.list[Candidate]:
            found = [c for c in stored(wanted) if str(c.version) != version or
                     wanted != name]
            return [new, *found] if wanted == name else found

        try:
            resolve([parse_request(f"{name}:{version}")], catalog, missing_ok=True)
        except CapsuleCycle as e:
            circle = list(e.sides[:-1])
            ref = f"{name}:{version}"
            if ref in circle:  # told from the capsule being made
                at = circle.index(ref)
                circle = [*circle[at:], *circle[:at], ref]
                raise CapsuleCycle("capsule dependency cycle: " + " -> ".join(circle),
                                   tuple(circle)) from None
            raise
        except (CapsuleConflict, NoSuchCapsule):
            pass  # not this create's business: they are told when it is resolved

    # -- queries -----------------------------------------------------------------------------
    def _used(self) -> dict[str, builtins.list[str]]:
        used: dict[str, builtins.list[str]] = {}
        for cid, refs in self.users():
            for ref in refs:
                used.setdefault(ref, []).append(cid)
        return used

    def _doc(self, record: CapsuleRecord, used: dict[str, builtins.list[str]] | None = None
             ) -> dict[str, Any]:
        doc = record.doc()
        if used is not None:
            doc["UsedBy"] = list(used.get(record.ref, []))
        tree = self.store.unpacked_path(record.digest)
        doc["Path"] = tree if os.path.isdir(tree) else ""
        return doc

    def find(self, ref: str, *, one: bool = False) -> CapsuleRecord:
        """The capsule ``name:version``; a bare ``name`` is its highest version (or, with
        `one`, its only one: a removal must not guess)."""
        if not isinstance(ref, str) or not ref:
            raise InvalidArgument("a capsule reference is name:version")
        name, colon, version = ref.partition(":")
        check_name(name)
        records = self.store.versions(name)
        if not records:
            raise NoSuchCapsule(f"no such capsule: {ref}")
        if colon:
            Version.parse(version)
            found = next((r for r in records if r.version == version), None)
            if found is None:
                have = ", ".join(r.version for r in self._ordered(records))
                raise NoSuchCapsule(f"no such capsule: {ref} (there are versions {have})")
            return found
        ordered = self._ordered(records)
        if one and len(ordered) > 1:
            raise InvalidArgument(f"capsule {name} has versions "
                                  f"{', '.join(r.version for r in ordered)}: name one "
                                  f"({name}:{ordered[-1].version})")
        return ordered[-1]

    @staticmethod
    def _ordered(records: Iterable[CapsuleRecord]) -> list[CapsuleRecord]:
        """By name, then version precedence (lowest first)."""
        return sorted(records, key=lambda r: (r.name, Version.parse(r.version).key()))

    def inspect(self, ref: str) -> dict[str, Any]:
        """``GET /capsules/{ref}/json``."""
        return self._doc(self.find(ref), self._used())

    def list(self, filters: Any = None) -> builtins.list[dict[str, Any]]:
        """``GET /capsules/json``: every capsule, by name and version; filters ``name``
        (the name, or name:version), ``label`` and ``digest``."""
        from skiff.engine.filters import Filters

        f = Filters.parse(filters)
        f.validate(LIST_FILTERS)
        used = self._used()
        out = []
        for record in self._ordered(self.store.all()):
            names = f.get("name")
            if names and record.name not in names and record.ref not in names:
                continue
            if not f.exact_match("digest", record.digest) or \
                    not f.match_kv_list("label", record.labels):
                continue
            out.append(self._doc(record, used))
        return out

    # -- resolve -----------------------------------------------------------------------------
    @staticmethod
    def _catalog(records: Iterable[CapsuleRecord]
                 ) -> Callable[[str], builtins.list[Candidate]]:
        by_name: dict[str, builtins.list[CapsuleRecord]] = {}
        for record in records:
            by_name.setdefault(record.name, []).append(record)
        made: dict[str, builtins.list[Candidate]] = {}

        def catalog(name: str) -> builtins.list[Candidate]:
            if name not in made:
                made[name] = [Candidate(name=r.name, version=Version.parse(r.version),
                                        digest=r.digest,
                                        requires={n: Range.parse(t)
                                                  for n, t in r.requires.items()})
                              for r in by_name.get(name, [])]
            return made[name]
        return catalog

    def resolve(self, requests: builtins.list[str]) -> builtins.list[Resolved]:
        """The capsules `requests` need, each with its verified read-only folder (see the
        module's docstring)."""
        if isinstance(requests, str):
            requests = [requests]
        parsed = [parse_request(r) for r in requests]
        if not parsed:
            return []
        picked = resolve(parsed, self._catalog(self.store.all()))
        return [Resolved(name=c.name, version=str(c.version), digest=c.digest,
                         path=self.store.unpack(c.digest)) for c in picked]

    # -- remove and prune --------------------------------------------------------------------
    def _dependants(self, record: CapsuleRecord,
                    records: builtins.list[CapsuleRecord]) -> builtins.list[str]:
        """The capsules whose requirement of `record`'s name only `record` satisfies."""
        version = Version.parse(record.version)
        others = [Version.parse(r.version) for r in records
                  if r.name == record.name and r.version != record.version]
        out = []
        for r in records:
            text = r.requires.get(record.name)
            if text is None:
                continue
            needed = Range.parse(text)
            if needed.matches(version) and not any(needed.matches(v) for v in others):
                out.append(f"{r.ref} (requires {record.name}@{text})")
        return out

    def remove(self, ref: str, force: bool = False) -> None:
        """``DELETE /capsules/{ref}``: refused while containers use it or another capsule
        needs it, unless `force` (which detaches it from those containers first)."""
        with self.lock:
            record = self.find(ref, one=True)
            users = self._used().get(record.ref, [])
            dependants = self._dependants(record, self.store.all())
            if users and not force:
                raise CapsuleConflict(f"capsule {record.ref} is in use by container(s) "
                                      f"[{', '.join(users)}]: detach it first, or force",
                                      (record.ref, ", ".join(users)))
            if dependants and not force:
                raise CapsuleConflict(f"capsule {record.ref} is required by "
                                      f"{', '.join(dependants)}: remove those first, or "
                                      f"force", (record.ref, dependants[0]))
            if users:
                if self.detach is None:
                    raise CapsuleConflict(f"capsule {record.ref} is in use by container(s) "
                                          f"[{', '.join(users)}] and cannot be detached "
                                          f"here", (record.ref, ", ".join(users)))
                self.detach(record.ref, list(users))
            self.store.remove(record.name, record.version)
        self._emit("delete", record)

    def prune(self, filters: Any = None) -> dict[str, Any]:
        """``POST /capsules/prune``: every capsule that no container uses and no kept
        capsule requires (``label``/``label!`` filters narrow what may go)."""
        from skiff.engine.filters import Filters

        f = Filters.parse(filters)
        f.validate(PRUNE_FILTERS)
        deleted: builtins.list[str] = []
        reclaimed = 0
        with self.lock:
            records = self.store.all()
            used = self._used()
            keep = {r.ref for r in records if r.ref in used
                    or not f.match_kv_list("label", r.labels)
                    or (f.contains("label!") and f.match_kv_list("label!", r.labels))}
            by_ref = {r.ref: r for r in records}
            todo = list(keep)
            while todo:  # what a kept capsule may need stays: any version its range takes
                kept = by_ref[todo.pop()]
                for dep, text in kept.requires.items():
                    needed = Range.parse(text)
                    for r in records:
                        if r.name == dep and r.ref not in keep and \
                                needed.matches(Version.parse(r.version)):
                            keep.add(r.ref)
                            todo.append(r.ref)
            for record in self._ordered(records):
                if record.ref in keep:
                    continue
                reclaimed += self.store.remove(record.name, record.version)
                deleted.append(record.ref)
                self._emit("delete", record)
        self.events.emit("capsule", "prune", "", {"reclaimed": str(reclaimed)})
        return {"CapsulesDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    def _emit(self, action: str, record: CapsuleRecord) -> None:
        self.events.emit("capsule", action, record.ref,
                         {**record.labels, "name": record.name, "version": record.version,
                          "digest": record.digest})
