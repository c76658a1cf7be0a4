# timeout: 1800
# Soak: 1000 create/start/delete cycles of /bin/true (half through `husk run`,
# half as create, start, delete --force), then 100 restarts of a supervised
# container through the daemon's control socket. What could leak is counted
# before and after and printed: mounts, cgroups, state files, pinned BPF
# programs, open files, processes and free memory of the guest, and the
# daemon's own descriptors and RSS. A leak fails the scenario.
. /lab/lib.sh

cycles=1000
restarts=100
data=$PWD/data
mkdir -p "$data"
make_bundle b soak '["/bin/true"]'

# proclist: "pid comm" of every user process (kernel threads, whose cmdline
# is empty, come and go) that is still alive once the listing is done, so the
# listing's own grep and the pipeline around it never count.
proclist() {
    grep -sl . /proc/[0-9]*/cmdline > proclist.tmp
    while read -r f; do
        d=${f%/cmdline}
        [ -e "$d" ] && echo "${d#/proc/} $(cat "$d/comm" 2>/dev/null)"
    done < proclist.tmp
    rm -f proclist.tmp
}

# counts TAG: one line of what could leak, system-wide; the process list is
# kept in procs.TAG.
counts() {
    mounts=$(wc -l < /proc/self/mountinfo)
    cgroups=$(find /sys/fs/cgroup -type d | wc -l)
    state=$(find /run/husk -mindepth 1 2>/dev/null | wc -l)
    pins=$(find /sys/fs/bpf -mindepth 1 2>/dev/null | wc -l)
    # Every process's open descriptors (fs/file-nr is a per-CPU estimate).
    files=$(find /proc/[0-9]*/fd -mindepth 1 2>/dev/null | wc -l)
    proclist > "procs.$1"
    procs=$(wc -l < "procs.$1")
    avail=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)
    echo "mounts=$mounts cgroups=$cgroups state=$state pins=$pins files=$files procs=$procs avail_kb=$avail"
}

# cycle I: one create/start/delete of container sI.
cycle() {
    if [ $(($1 % 2)) = 0 ]; then
        husk run --bundle b "s$1" || fail "cycle $1: husk run exited with $?"
    else
        husk create --bundle b "s$1" || fail "cycle $1: husk create exited with $?"
        husk start "s$1" || fail "cycle $1: husk start exited with $?"
        husk delete --force "s$1" || fail "cycle $1: husk delete exited with $?"
    fi
}

step "warm-up: 10 cycles (the first pins the device program, loads modules)"
for i in $(seq 1 10); do cycle "$i"; done
sync; echo 1 > /proc/sys/vm/drop_caches
before=$(counts before)
echo "before: $before"

step "$cycles create/start/delete cycles"
start=$(date +%s)
for i in $(seq 11 $((cycles + 10))); do cycle "$i"; done
took=$(($(date +%s) - start))
sync; echo 1 > /proc/sys/vm/drop_caches
after=$(counts after)
echo "after:  $after"
echo "RESULT soak: $cycles cycles in $took s"

# same WHAT: the count WHAT is the same before and after.
same() {
    b=$(echo "$before" | tr ' ' '\n' | sed -n "s/^$1=//p")
    a=$(echo "$after" | tr ' ' '\n' | sed -n "s/^$1=//p")
    if [ "$a" != "$b" ]; then
        if [ "$1" = procs ]; then
            echo "processes before:"; cat procs.before
            echo "processes after:"; cat procs.after
        fi
        fail "$1 leaked: $b before, $a after $cycles cycles"
    fi
    echo "ok: $1 = $a before and after"
}
for what in mounts cgroups state pins procs; do same "$what"; done
b_files=$(echo "$before" | sed 's/.*files=\([0-9]*\).*/\1/')
a_files=$(echo "$after" | sed 's/.*files=\([0-9]*\).*/\1/')
[ "$a_files" -le $((b_files + 8)) ] || fail "open files grew from $b_files to $a_files"
echo "ok: open files $b_files before, $a_files after"
b_avail=$(echo "$before" | sed 's/.*avail_kb=//')
a_avail=$(echo "$after" | sed 's/.*avail_kb=//')
# 16 MiB of a 512 MiB guest: 16 KiB lost per cycle would show.
[ "$a_avail" -ge $((b_avail - 16384)) ] ||
    fail "free memory fell from $b_avail kB to $a_avail kB"
echo "ok: MemAvailable $b_avail kB before, $a_avail kB after"

step "the daemon: $restarts restarts through the control socket"
make_bundle app app '["/bin/sleep", "1000000"]'
cat > "$data/desired.json" <<JSON
{"containers": [{"name": "app", "bundle": "$PWD/app", "restart": "always", "stopTimeout": "1s"}]}
JSON
husk daemon --data-dir "$data" 2> daemon.log &
daemon=$!

# pid_of: app's pid as the daemon publishes it, once it runs.
pid_of() {
    husk daemon status --data-dir "$data" --json 2>/dev/null | grep '"state":"running"' |
        sed -n 's/.*"pid":\([0-9]*\).*/\1/p'
}

# restart: restarts app and waits (60 s at most) until it runs with a new pid.
restart() {
    old=$(pid_of)
    husk restart app > /dev/null || fail "husk restart exited with $?"
    i=0
    while new=$(pid_of); [ -z "$new" ] || [ "$new" = "$old" ]; do
        i=$((i + 1))
        [ $i -lt 3000 ] || { tail -n 20 daemon.log; fail "app did not come back after a restart"; }
        sleep 0.02
    done
}

i=0
until [ -n "$(pid_of)" ]; do
    i=$((i + 1)); [ $i -lt 3000 ] || { cat daemon.log; fail "app never ran"; }
    sleep 0.02
done
for i in $(seq 1 10); do restart; done
fds() { find "/proc/$daemon/fd" -mindepth 1 | wc -l; }
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$daemon/status"; }
b_fds=$(fds); b_rss=$(rss)
for i in $(seq 1 "$restarts"); do restart; done
a_fds=$(fds); a_rss=$(rss)
echo "RESULT soak daemon: $restarts restarts: fds $b_fds -> $a_fds, VmRSS $b_rss -> $a_rss kB"
expect_eq "daemon's open descriptors after $restarts restarts" "$a_fds" "$b_fds"
# The allocator may keep a page or two; a leak per restart would not fit.
[ "$a_rss" -le $((b_rss + 64)) ] || fail "the daemon's RSS grew from $b_rss to $a_rss kB"
echo "ok: daemon VmRSS $b_rss kB before, $a_rss kB after"
kill "$daemon" && wait "$daemon"
