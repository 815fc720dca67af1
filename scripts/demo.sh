#!/usr/bin/env bash
# make demo: start dist/pyd's daemon on scratch dirs in its own network namespace, import a busybox image
# made from Debian's busybox-static, run `pyd run --rm busybox echo hello`, stop the daemon, clean up.
set -euo pipefail
cd "$(dirname "$0")/.."
PYD="$PWD/dist/pyd"
[ -x "$PYD" ] || python3 build.py

WORK=$(mktemp -d /tmp/pyd-demo.XXXXXX)
HOST="unix://$WORK/pyd.sock"
LOG="$WORK/daemon.log"
CGROUP_PARENT="pyd-demo-$$"
DAEMON_PID=""

stop_daemon() {
    [ -n "$DAEMON_PID" ] || return 0
    kill -TERM "$DAEMON_PID" 2>/dev/null || true
    for _ in $(seq 200); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$DAEMON_PID" 2>/dev/null || true
    wait "$DAEMON_PID" 2>/dev/null || true
    DAEMON_PID=""
}

# Processes that still use $WORK (an execd, a container left by a failed step), by PID.
leftover_pids() {
    local p pid
    for p in /proc/[0-9]*; do
        pid=${p#/proc/}
        [ "$pid" = "$$" ] && continue
        if grep -qzF "PYD_DEMO_ROOT=$WORK" "$p/environ" 2>/dev/null \
            || ls -l "$p/fd" 2>/dev/null | grep -qF "$WORK"; then
            echo "$pid"
        fi
    done
}

cleanup() {
    local status=$? pid mnt
    stop_daemon
    for pid in $(leftover_pids); do kill -KILL "$pid" 2>/dev/null || true; done
    # mounts under $WORK, deepest first; repeated for mounts stacked on one point
    for _ in 1 2 3 4 5; do
        awk -v w="$WORK" '$5 == w || index($5, w "/") == 1 {print $5}' /proc/self/mountinfo | sort -r |
            while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done
    done
    if [ "$status" -ne 0 ] && [ -f "$LOG" ]; then
        echo "demo failed (exit $status); daemon log:" >&2
        cat "$LOG" >&2
    fi
    rm -rf "$WORK"
    # the demo's parent cgroup in every hierarchy (its containers' cgroups are gone with them)
    find /sys/fs/cgroup -depth -type d -name "$CGROUP_PARENT" -exec rmdir {} \; 2>/dev/null || true
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ping_daemon() {
    /usr/bin/python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(1); s.connect(sys.argv[1])
s.sendall(b"GET /_ping HTTP/1.1\r\nHost: pyd\r\nConnection: close\r\n\r\n")
sys.exit(0 if s.recv(64).startswith(b"HTTP/1.1 200") else 1)' "$WORK/pyd.sock" 2>/dev/null
}

say() { printf '\n$ %s\n' "$*"; }

echo '{}' >"$WORK/daemon.json"
say pyd daemon --data-root "$WORK/data" --exec-root "$WORK/exec" -H "$HOST" "(in a new network namespace)"
PYD_DEMO_ROOT="$WORK" unshare --net -- sh -c 'ip link set lo up && exec "$@"' sh \
    "$PYD" daemon --data-root "$WORK/data" --exec-root "$WORK/exec" --pidfile "$WORK/pyd.pid" -H "$HOST" \
    --config-file "$WORK/daemon.json" --cgroup-parent "$CGROUP_PARENT" >"$LOG" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 200); do
    ping_daemon && break
    kill -0 "$DAEMON_PID" 2>/dev/null || { echo "the daemon exited" >&2; exit 1; }
    sleep 0.1
done
ping_daemon || { echo "the daemon did not answer /_ping within 20 s" >&2; exit 1; }

say python3 tests/kit/images.py rootfs busybox.tar "(a rootfs from /bin/busybox and its applets)"
python3 tests/kit/images.py rootfs "$WORK/busybox.tar"

say pyd import busybox.tar busybox
"$PYD" -H "$HOST" import "$WORK/busybox.tar" busybox

say pyd run --rm busybox echo hello
"$PYD" -H "$HOST" run --rm busybox echo hello

say kill -TERM "$DAEMON_PID"
stop_daemon
echo "demo done"
