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

# daemon: starts husk daemon, its log on the console as well (a cut loses
# the log file's tail, not the console's).
daemon() {
    husk daemon --data-dir "$data" >> "$data/daemon.log" 2>&1 &
    daemon_pid=$!
}

# says N: app's last line is "release N" (release 0, the factory state,
# has no containers).
says() {
    [ "$1" = 0 ] || [ "$(H logs --tail 1 app 2>/dev/null)" = "release $1" ]
}

# settled N: waits (600 s at most) until the device runs release N,
# committed, with every container up and healthy, and app says so.
settled() {
    i=0
    until H status > /tmp/status 2>&1 &&
        H update status --json | grep -q "\"current\":$1," && says "$1"; do
        i=$((i + 1))
        if [ $i -ge 1200 ]; then
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
daemon
settled "$next"
mark "CUT-CLOSE release=$next"
H update history | tail -n 3
kill "$daemon_pid" && wait "$daemon_pid"
sync
