# timeout: 600
# Signed delta updates on the device. The repository the lab published on
# the host (qemu-tests/husklab/updates.py) is served from this guest's
# loopback by busybox httpd; husk daemon polls it. Release 1 installs whole;
# release 2 arrives as deltas (zstd-patch); release 3 never becomes healthy and is
# rolled back by itself; an expired timestamp, a tampered blob and a
# replayed old release are each refused with release 2 still running.
. /lab/lib.sh

[ -d /lab/update/snapshots ] || skip "the lab published no update repository (run through qemu-tests/lab)"
data=$PWD/data
H() { husk --data-dir "$data" "$@"; }

# serve SNAPSHOT: busybox httpd on 127.0.0.1:8080 serves that snapshot's
# metadata and the shared blobs.
httpd_pid=
serve() {
    [ -n "$httpd_pid" ] && kill "$httpd_pid" && wait "$httpd_pid" 2>/dev/null
    rm -rf served
    mkdir served || fail "cannot make served/"
    # Copied, not preserved, a second after the last: busybox httpd's ETag
    # is mtime and size, and two timestamps of one second would look alike
    # to the daemon's polls (by hand, husk update sends no ETag).
    sleep 1
    cp -R "/lab/update/snapshots/$1/." served/ || fail "no snapshot $1"
    touch served/timestamp.json
    ln -s "${2:-/lab/update/blobs}" served/blobs
    busybox httpd -f -p 127.0.0.1:8080 -h "$PWD/served" &
    httpd_pid=$!
    sleep 0.2
    echo "serving $1"
}

# until_state TEXT: waits (240 s at most) for `husk update status --json` to contain TEXT.
until_state() {
    i=0
    until H update status --json 2>/dev/null | grep -q "$1"; do
        i=$((i + 1))
        [ $i -lt 1200 ] || { H update status; tail -n 30 daemon.log; fail "the update state never said $1"; }
        sleep 0.2
    done
}

# app_says TEXT: waits (60 s at most) for the container's log to end with TEXT.
app_says() {
    i=0
    until [ "$(H logs --tail 1 app 2>/dev/null)" = "$1" ]; do
        i=$((i + 1))
        [ $i -lt 300 ] || { tail -n 30 daemon.log; fail "app never said $1"; }
        sleep 0.2
    done
    echo "ok: app says $1"
}

step "a device provisioned with the trusted root and its update settings"
mkdir -p "$data/update"
cp /lab/update/root.json "$data/update/root.json"
cat > "$data/update/config.json" <<JSON
{"server": "http://127.0.0.1:8080", "deviceClass": "lab", "hardware": "qemu",
 "interval": "10s", "grace": "60s"}
JSON
serve r1
husk daemon --data-dir "$data" 2> daemon.log &
daemon=$!

step "the daemon polls: release 1 installs whole and is committed when healthy"
until_state '"current":1,'
until_state '"history":\[.*"committed"'
app_says "release 1"
H update status

step "release 2 arrives as deltas"
serve r2
until_state '"current":2,'
until_state '"release":2,"event":"committed"'
app_says "release 2"
H update history | grep ' 2 ' | grep installed
full=$(H update history --json | sed 's/.*"release":2,"event":"installed","detail":"downloaded \([0-9]*\) of \([0-9]*\) bytes.*/\2/')
got=$(H update history --json | sed 's/.*"release":2,"event":"installed","detail":"downloaded \([0-9]*\) of \([0-9]*\) bytes.*/\1/')
echo "release 2: downloaded $got bytes, the full layers are $full bytes"
[ "$got" -lt $((full / 4)) ] || fail "release 2 downloaded $got of $full bytes: not deltas"
# Its deltas are zstd-patch: their frames decoded with the window on disk.
if H update history | grep ' 2 ' | grep installed | grep 'delta failed'; then
    fail "release 2: a delta did not apply"
fi

step "release 3 never becomes healthy: rolled back to release 2"
serve r3
until_state '"release":3,"event":"rolled back"'
until_state '"current":2,'
app_says "release 2"
H update history | head -n 4

step "an expired timestamp is refused; release 2 still runs"
kill "$daemon"; wait "$daemon"
serve expired
H update apply > out.txt 2>&1 && fail "an expired timestamp was accepted: $(cat out.txt)"
cat out.txt
grep -q "expired" out.txt || fail "not refused for its expiry"
expect_eq "linked release" "$(readlink "$data/desired.json")" "update/releases/2/desired.json"

step "a tampered blob is refused; release 2 still runs"
cp -a /lab/update/blobs tampered
for blob in tampered/sha256/*; do
    hex=${blob##*/}
    grep -rqs "$hex" /lab/update/snapshots/r3 && continue
    # A blob release 4 brought: its last byte flipped.
    printf 'X' | dd of="$blob" bs=1 seek=$(($(wc -c < "$blob") - 1)) conv=notrunc 2>/dev/null
done
serve tampered "$PWD/tampered"
H update apply > out.txt 2>&1 && fail "a tampered blob was accepted: $(cat out.txt)"
cat out.txt
grep -q "sha256" out.txt || fail "not refused for its hash"
[ -e "$data/update/releases/4" ] && fail "release 4 was staged"
expect_eq "linked release" "$(readlink "$data/desired.json")" "update/releases/2/desired.json"

step "a replayed old release is refused; release 2 still runs"
serve r1
H update apply > out.txt 2>&1 && fail "a replayed release was accepted: $(cat out.txt)"
cat out.txt
grep -q "lower than" out.txt || fail "not refused as a rollback"
expect_eq "linked release" "$(readlink "$data/desired.json")" "update/releases/2/desired.json"

step "the daemon starts again on release 2"
husk daemon --data-dir "$data" 2> daemon2.log &
daemon=$!
# Its log still ends with the last run's line: wait for the new run.
i=0
until H ps 2>/dev/null | grep -q "^app .*running"; do
    i=$((i + 1))
    [ $i -lt 300 ] || { H ps; tail -n 30 daemon2.log; fail "app never ran again"; }
    sleep 0.2
done
app_says "release 2"

step "a field engineer's session on this console: status, ps, logs, history"
# fits80 CMD...: runs CMD, shows its output, and fails on a line over 80 columns.
fits80() {
    "$@" > reply.txt 2>&1
    rc=$?
    cat reply.txt
    awk 'length($0) > 80 { print "FAIL: over 80 columns: " $0; bad = 1 } END { exit bad }' reply.txt \
        || fail "$* printed a line over 80 columns"
    return $rc
}
i=0
until fits80 H status > /dev/null; do
    i=$((i + 1)); [ $i -lt 150 ] || { H status; fail "husk status never said all is well"; }
    sleep 0.2
done
fits80 H status || fail "husk status exited with $?"
grep -q "2, committed" reply.txt || grep -q "release 2" reply.txt || fail "husk status does not show release 2"
fits80 H ps || fail "husk ps exited with $?"
grep -q "^app .*running" reply.txt || fail "husk ps does not show app running"
fits80 H logs --tail 5 app || fail "husk logs exited with $?"
expect_eq "the last log line" "$(tail -n 1 reply.txt)" "release 2"
fits80 H update history || fail "husk update history exited with $?"
grep -q "rolled back *container app is unhealthy" reply.txt || fail "the history lacks the rollback"
kill "$daemon"; wait "$daemon"
kill "$httpd_pid"
H update status
echo "ok: every update ended on a consistent release"
