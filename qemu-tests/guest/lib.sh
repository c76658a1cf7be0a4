# Helpers for scenario scripts (sourced: . /lab/lib.sh).
# A scenario passes by exiting 0, fails with any other status, and is skipped by
# exiting 77 after saying why (skip "reason").

# step TEXT: says what the scenario checks next.
step() { echo "--- $*"; }

# fail TEXT: ends the scenario with a clear message.
fail() { echo "FAIL: $*"; exit 1; }

# A scenario that ends early (fail, a command's error) must not leave the
# daemon it started (each names it $daemon) to the scenarios after it: a
# failed daemon scenario's daemon once answered the soak's husk restart.
# The scenario's own exit status is kept.
# shellcheck disable=SC2154 # $daemon is the scenario's, $rc the trap's own
trap 'rc=$?; [ -z "${daemon:-}" ] || kill "$daemon" 2>/dev/null; exit $rc' EXIT

# skip TEXT: ends the scenario as skipped.
skip() { echo "SKIP: $*"; exit 77; }

# expect_eq WHAT ACTUAL EXPECTED
expect_eq() {
    [ "$2" = "$3" ] || fail "$1: got '$2', expected '$3'"
    echo "ok: $1 = '$2'"
}

# expect_ne WHAT A B
expect_ne() {
    [ "$2" != "$3" ] || fail "$1: both are '$2'"
    echo "ok: $1 differ ('$2' vs '$3')"
}

# make_bundle DIR HOSTNAME ARGS_JSON [LINUX_JSON]: an OCI bundle over the lab's
# busybox rootfs, in new mount, pid, uts, ipc and net namespaces, with /proc
# mounted. LINUX_JSON is more members of "linux", e.g. '"resources": {...}'.
make_bundle() {
    mkdir -p "$1" && cp -a /lab/rootfs "$1/rootfs" || fail "cannot copy the test rootfs to $1"
    cat > "$1/config.json" <<JSON
{
  "ociVersion": "1.0.2",
  "process": {
    "terminal": false,
    "args": $3,
    "env": ["PATH=/bin", "HOME=/"],
    "cwd": "/"
  },
  "root": {"path": "rootfs", "readonly": false},
  "hostname": "$2",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"}
  ],
  "linux": {
    "namespaces": [
      {"type": "mount"}, {"type": "pid"}, {"type": "uts"},
      {"type": "ipc"}, {"type": "network"}
    ]${4:+,
    $4}
  }
}
JSON
}
