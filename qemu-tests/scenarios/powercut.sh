# timeout: 900
# powercut: 2
# Power cuts during updates of a real-size layer, on a persistent disk. The
# lab's powercut driver (qemu-tests/husklab/powercut.py) boots the guest
# again and again with the same two virtio disks, and kills QEMU at a random
# moment of the cut window this script marks. Each boot runs it once:
#
#  1. The device as the last boot left it, perhaps cut: mount the data disk
#     (ext4 replays its journal), let husk daemon bring the containers back
#     and judge a release left on probation, and check that the device runs
#     one consistent release, healthy. Report it (POWERCUT release=N).
#  2. Serve release N+1 and start the daemon: it restores the containers,
#     polls, rebuilds the real-size layer from a delta, switches, restarts
#     app and commits. CUT-OPEN and CUT-CLOSE bracket that window.
#  3. After CUT-CLOSE, the peak RSS of the process that applied the update
#     (see `measured` below): a RESULT line and a BENCH-JSON line, which
#     bench/run's apply part reads.
. /lab/lib.sh

[ -n "$HUSK_LAB_TOKEN" ] || skip "no lab token (runs through qemu-tests/lab)"
mark() { echo "HUSK-LAB:$HUSK_LAB_TOKEN:$*"; }
dev=$(findfs LABEL=husk-data 2>/dev/null) ||
    skip "no data disk labelled husk-data (the lab's powercut driver attaches one)"
repo_dev=$(findfs LABEL=husk-repo 2>/dev/null) || skip "no repository disk labelled husk-repo"
data=/var/lib/husk
repo=/tmp/repo
mount -t ext4 "$dev" "$data" || fail "cannot mount the data disk $dev on $data"
{ mkdir -p "$repo" && mount -t ext4 -o ro "$repo_dev" "$repo"; } || fail "cannot mount the repository disk $repo_dev"
H() { husk --data-dir "$data" "$@"; }
# The size of the real-size layer in MiB, which the driver writes on the
# repository disk; the waits below grow with it (600 s for 36 MiB).
mib=$(cat "$repo/layer-mib" 2>/dev/null) || mib=
case "$mib" in '' | *[!0-9]*) mib=36 ;; esac
patience=$((1200 * (mib > 36 ? mib : 36) / 36))

# config [SERVER]: the device's update settings; without a server the
# daemon does not poll.
config() {
    server=${1:+"\"server\": \"$1\", "}
    cat > "$data/update/config.json.tmp" <<JSON || fail "cannot write the update config"
{$server"deviceClass": "lab", "hardware": "qemu", "interval": "10s", "grace": "300s"}
JSON
    mv "$data/update/config.json.tmp" "$data/update/config.json"
}

# serve N: busybox httpd on 127.0.0.1:8080 serves the repository with
# release N as the newest (releases are immutable; only the timestamp says).
serve() {
    { rm -rf /tmp/served && mkdir /tmp/served; } || fail "cannot make /tmp/served"
    for name in root.json root releases blobs; do
        ln -s "$repo/served/$name" "/tmp/served/$name"
    done
    cp "$repo/timestamps/$1.json" /tmp/served/timestamp.json || fail "no release $1 on the disk"
    busybox httpd -p 127.0.0.1:8080 -h /tmp/served || fail "cannot start httpd"
}

# daemon [HUSK]: starts husk daemon (from the binary HUSK, default husk),
# its output appended to daemon.log on the data disk.
daemon() {
    "${1:-husk}" daemon --data-dir "$data" >> "$data/daemon.log" 2>&1 &
    daemon_pid=$!
}

# measured: starts husk daemon so that the peak RSS of its update polls is
# measured. The daemon applies an update in a child, `husk update apply
# --poll`, which it runs by the path of its own binary (/proc/self/exe).
# So the daemon runs from a copy, $m/husk, and once it does, a wrapper is
# bind-mounted over that path: each poll then runs under `husk-bench rss`
# (getrusage of the apply process: its own peak RSS, exactly), writes its
# figures to $m/polls/<pid> and exits with the apply's status. The wrapper
# also notes the daemon's RSS as the poll starts, from smaps_rollup (a walk
# of its page tables: Linux 6.1's VmRSS and VmHWM count each thread's page
# faults in batches of 64, and read near 0 for a daemon that faulted little).
m=/tmp/measure
measured() {
    { mkdir -p "$m/polls" && cp /usr/bin/husk "$m/husk"; } || fail "cannot copy husk to $m"
    cat > "$m/wrapper" <<'SH' || fail "cannot write $m/wrapper"
#!/bin/sh
case " $* " in
*" update apply "*) ;;
*) exec /usr/bin/husk "$@" ;;
esac
out=/tmp/measure/polls/$$
rss=$(sed -n 's/^Rss:[[:space:]]*\([0-9]*\) kB$/\1/p' "/proc/$PPID/smaps_rollup")
comm=$(cat "/proc/$PPID/comm")
read -r t0 _ < /proc/uptime
/usr/bin/husk-bench rss /usr/bin/husk "$@" > "$out.run" 2>&1
read -r t1 _ < /proc/uptime
{ echo "uptime $t0 $t1"; echo "daemon RSS ${rss:-?} kB (pid $PPID, $comm)"; cat "$out.run"; } > "$out"
cat "$out"
rm -f "$out.run"
code=$(sed -n 's/^peak RSS of .*(exit status: \([0-9]*\))$/\1/p' "$out")
exit "${code:-1}"
SH
    chmod 755 "$m/wrapper"
    daemon "$m/husk"
    i=0
    until [ "$(readlink "/proc/$daemon_pid/exe")" = "$m/husk" ]; do
        i=$((i + 1))
        [ $i -lt 100 ] || { echo "measure: husk daemon never ran from $m/husk"; return; }
        sleep 0.05
    done
    mount -o bind "$m/wrapper" "$m/husk" || echo "measure: cannot bind the wrapper over $m/husk"
}

# centi T: a /proc/uptime reading (seconds, two decimals) in centiseconds.
centi() { echo "${1%.*}${1#*.}" | sed 's/^0*\([0-9]\)/\1/'; }

# report_apply T: the figures of the poll that installed release T: a
# RESULT line and a BENCH-JSON line.
report_apply() {
    poll=$(grep -l "^release $1 installed" "$m"/polls/* 2>/dev/null | tail -n 1)
    if [ -z "$poll" ]; then
        echo "RESULT apply of release $1: peak RSS not measured (no measured poll installed it)"
        return
    fi
    kib=$(sed -n 's/^BENCH-JSON {"rss_kib":\([0-9]*\),.*/\1/p' "$poll")
    how=$(sed -n 's/^release .* bytes (\([0-9]*\) delta, \([0-9]*\) whole, \([0-9]*\) kept)$/\1 \2 \3/p' "$poll")
    # shellcheck disable=SC2086 # three numbers
    set -- $how
    deltas=${1:-0} whole=${2:-0} kept=${3:-0}
    # shellcheck disable=SC2046 # two readings of /proc/uptime
    set -- $(sed -n 's/^uptime //p' "$poll")
    [ $# -eq 2 ] || set -- 0.00 0.00
    took=$(($(centi "$2") - $(centi "$1")))
    secs="$((took / 100)).$((took % 100 / 10))$((took % 10))"
    before=$(sed -n 's/^daemon RSS \([0-9]*\) kB .*/\1/p' "$poll")
    after=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB$/\1/p' "/proc/$daemon_pid/status")
    echo "RESULT apply of a $mib MiB layer ($deltas delta, $whole whole, $kept kept) in $secs s"
    echo "RESULT peak RSS of the apply (husk update apply, the daemon's child): ${kib:-?} KiB"
    echo "RESULT daemon: RSS ${before:-?} KiB as the poll began, VmHWM ${after:-?} KiB (whole life)"
    echo "BENCH-JSON {\"apply_rss_kib\":${kib:-null},\"layer_mib\":$mib,\"release\":$next," \
        "\"deltas\":$deltas,\"whole\":$whole,\"kept\":$kept,\"seconds\":$secs," \
        "\"daemon_rss_before_kib\":${before:-null},\"daemon_hwm_kib\":${after:-null}}"
}

# says N: app's last line is "release N" (release 0, the factory state,
# has no containers).
says() {
    [ "$1" = 0 ] || [ "$(H logs --tail 1 app 2>/dev/null)" = "release $1" ]
}

# settled N: waits (600 s at most; in proportion for a layer over 36 MiB)
# until the device runs release N, committed, with every container up and
# healthy, and app says so.
settled() {
    i=0
    until H status > /tmp/status 2>&1 &&
        H update status --json | grep -q "\"current\":$1," && says "$1"; do
        i=$((i + 1))
        if [ $i -ge "$patience" ]; then
            cat /tmp/status
            H update status
            tail -n 30 "$data/daemon.log"
            fail "release $1 never settled (committed, healthy, app saying so)"
        fi
        sleep 0.5
    done
}

if [ -f "$data/update/state.json" ]; then
    step "after the last boot: the device runs one consistent release"
    current=$(H update status --json | sed -n 's/.*"current":\([0-9]*\),.*/\1/p')
    [ -n "$current" ] || fail "husk update status does not read: $(H update status 2>&1)"
    link=$(readlink "$data/desired.json")
    if [ "$current" -gt 0 ]; then
        expect_eq "desired.json" "$link" "update/releases/$current/desired.json"
    fi
    config
    daemon
    settled "$current"
    H status | head -n 12
    mark "POWERCUT release=$current"
    kill "$daemon_pid" && wait "$daemon_pid"
else
    step "a fresh device: provisioned with the trusted root and its update settings"
    { mkdir -p "$data/update" && cp "$repo/root.json" "$data/update/root.json"; } ||
        fail "cannot provision the data disk"
    current=0
    mark "POWERCUT release=0"
fi

next=$((current + 1))
step "release $next: the daemon installs it (the cut window)"
serve "$next"
config http://127.0.0.1:8080
mark "CUT-OPEN release=$next"
measured
settled "$next"
mark "CUT-CLOSE release=$next"
H update history | tail -n 3
report_apply "$next"
kill "$daemon_pid" && wait "$daemon_pid"
umount "$m/husk" 2>/dev/null
sync
