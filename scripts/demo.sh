#!/bin/sh
# The main job on a fresh machine: run a busybox container with skiff-runtime.
set -eu
work=$(mktemp -d /tmp/skiff-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$(dirname "$0")/busybox-rootfs" "$work/bundle/rootfs"
cd "$work/bundle"
skiff-runtime spec
# not a terminal (so the demo runs anywhere), and a command instead of sh
/usr/bin/python3 - <<'PY'
import json
c = json.load(open("config.json"))
c["process"]["terminal"] = False
c["process"]["args"] = ["sh", "-c", "echo hello from a skiff container: $(hostname), pid $$; id; ls /"]
json.dump(c, open("config.json", "w"), indent=1)
PY
skiff-runtime --root "$work/state" run "demo-$$"
