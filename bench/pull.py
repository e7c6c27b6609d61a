"""Side-by-side timing of an image pull: skiff, ``docker pull`` and ``skopeo copy``.

Run as root with the venv's python (stdlib only)::

    .venv/bin/python bench/pull.py [--runs 10] [--mib 50]     # or: make bench

Everything it uses it starts itself, in one temporary folder, and stops again: Debian's
``docker-registry`` on a free 127.0.0.1 port, a ``dockerd`` of its own (own ``--data-root``,
``--exec-root`` and socket, no iptables, no bridge: it touches nothing of a dockerd the machine
may run), and a ``skiffd`` with its own SKIFF_ROOT/SKIFF_RUN. The image is two layers made
here — a busybox binary and ``--mib`` MiB of ``/dev/urandom`` (so gzip cannot shrink it) — put
into the registry by skopeo, a tool skiff did not write. Then one hyperfine call (``-N``) times
the three pulls side by side, each run cold: its ``--prepare`` removes what the previous run
pulled (``docker rmi``, ``skiff rmi``, ``rm -rf`` of skopeo's OCI dir), so every run downloads,
verifies and (for docker and skiff) unpacks the whole image. skopeo copies into an OCI layout
without unpacking: the floor of moving the bytes. This is a noisy 2-vCPU VM: quote the
medians' ratios from one run, not absolute seconds across runs.

Printed: tool | median s | min | max | ratio skiff/tool; all of it as JSON in
``bench/results/pull-<timestamp>.json``. Exit 1 when a tool failed, 2 when one is missing.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from daemons import (Processes, log, start_dockerd, start_skiffd, unmount_under,
                     wait_for)

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"
TOOLS = ("docker-registry", "dockerd", "docker", "skopeo", "hyperfine")
IMAGE = "bench/big:1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------------- the image
def _tar_member(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    tar.addfile(info, io.BytesIO(data))


def _layer(files: dict[str, tuple[bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, (data, mode) in files.items():
            _tar_member(tar, name, data, mode)
    return buf.getvalue()


def make_oci_layout(path: Path, mib: int) -> int:
    """An OCI image layout at `path` with the busybox layer and `mib` MiB of random bytes;
    returns the total compressed size of the layers."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> dict[str, Any]:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    tars = [_layer({"bin/busybox": (Path("/bin/busybox").read_bytes(), 0o755)}),
            _layer({"big.bin": (os.urandom(mib << 20), 0o644)})]
    layers, diff_ids = [], []
    for raw in tars:
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                       **put(gzip.compress(raw, compresslevel=6, mtime=0))})
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Cmd": ["/bin/busybox", "sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **put(config)},
        "layers": layers}).encode()
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", **put(manifest),
        "annotations": {"org.opencontainers.image.ref.name": "1"}}]}))
    return sum(layer["size"] for layer in layers)


# ---------------------------------------------------------------------------------- the run
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--mib", type=int, default=50, help="size of the random layer (MiB)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        log(f"missing: {' '.join(missing)} (make bench installs them)")
        return 2
    procs = Processes()
    work = Path(tempfile.mkdtemp(prefix="skiff-bench-pull."))
    try:
        return run(args, work, procs)
    finally:
        procs.stop_all()
        unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path, procs: Processes) -> int:
    port = free_port()
    registry = f"127.0.0.1:{port}"
    (work / "registry.yml").write_text(
        "version: 0.1\nlog: {level: error}\n"
        f"storage: {{filesystem: {{rootdirectory: {work}/registry}}}}\n"
        f"http: {{addr: '{registry}'}}\n")
    procs.start("docker-registry", ["docker-registry", "serve", str(work / "registry.yml")],
                work / "registry.log")
    wait_for("docker-registry",
             lambda: urllib.request.urlopen(f"http://{registry}/v2/", timeout=1).status == 200)

    log(f"making the image ({args.mib} MiB random layer) and copying it in with skopeo")
    size = make_oci_layout(work / "layout", args.mib)
    ref = f"{registry}/{IMAGE}"
    subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false",
                    f"oci:{work}/layout:1", f"docker://{ref}"], check=True)

    docker = start_dockerd(procs, work)
    skiff_cli, env = start_skiffd(procs, work)

    def sh(argv: list[str]) -> str:
        # hyperfine -N splits on spaces; quiet rmi of an image that may not be there yet
        return "sh -c '" + " ".join(argv) + " >/dev/null 2>&1 || true'"

    skopeo_dir = work / "skopeo-copy"
    cases = {
        "skiff": (" ".join(skiff_cli + ["pull", "-q", ref]), sh(skiff_cli + ["rmi", ref])),
        "docker": (" ".join(docker + ["pull", "-q", ref]), sh(docker + ["rmi", ref])),
        "skopeo": (f"skopeo copy -q --src-tls-verify=false docker://{ref} oci:{skopeo_dir}:1",
                   f"rm -rf {skopeo_dir}"),
    }
    export = work / "hyperfine.json"
    cmd = ["hyperfine", "-N", "--runs", str(args.runs), "--warmup", str(args.warmup),
           "--export-json", str(export)]
    for name, (run_cmd, prepare) in cases.items():
        cmd += ["--command-name", name, "--prepare", prepare, run_cmd]
    log(f"hyperfine: {args.runs} cold pulls each of {ref} ({size / 1e6:.1f} MB compressed)")
    done = subprocess.run(cmd, env=env, stdout=None if args.verbose else subprocess.DEVNULL)
    if done.returncode != 0:
        log("hyperfine failed (a tool's pull failed); rerun with -v")
        return 1
    results = {r["command"]: r for r in json.loads(export.read_text())["results"]}
    medians = {name: statistics.median(r["times"]) for name, r in results.items()}
    print(f"\npull of {ref}: {size / 1e6:.1f} MB in 2 layers, {args.runs} cold runs each")
    print(f"{'tool':8} {'median s':>9} {'min':>7} {'max':>7}  skiff/tool")
    for name, r in results.items():
        print(f"{name:8} {medians[name]:9.3f} {min(r['times']):7.3f} {max(r['times']):7.3f}"
              f"  {medians['skiff'] / medians[name]:6.2f}x")
    RESULTS_DIR.mkdir(exist_ok=True)
    out = args.out or RESULTS_DIR / f"pull-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"image_bytes": size, "runs": args.runs, "medians_s": medians,
                               "hyperfine": results}, indent=1))
    log(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
