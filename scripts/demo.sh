#!/bin/sh
# The main job on a fresh machine: a busybox container through skiff, on the embedded
# defaults (skiffd started on demand, SQLite state in $SKIFF_ROOT, the built-in busybox
# image made from the host's busybox-static: no registry, no internet).
set -eu
run=${SKIFF_RUN:-/run/skiff}
pidfile="$run/skiffd.pid"
ours=""
if ! { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }; then
  ours=yes  # `skiff` starts skiffd itself; the demo stops the one it caused
fi
stop() {
  if [ -n "$ours" ] && [ -f "$pidfile" ]; then
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  fi
}
trap stop EXIT
skiff run --rm --network none busybox \
  sh -c 'echo "hello from a skiff container: $(hostname), pid $$"; id; ls /'
skiff images
