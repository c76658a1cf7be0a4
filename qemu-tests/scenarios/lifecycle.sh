# timeout: 180
# The OCI lifecycle on the device, as runc's users drive it: create, start,
# state, list, exec, pause, resume, ps, kill, delete; and what is refused.
. /lab/lib.sh

status_of() { husk state "$1" | sed -n 's/.*"status":"\([a-z]*\)".*/\1/p'; }
pid_of() { husk state "$1" | sed -n 's/.*"pid":\([0-9]*\).*/\1/p'; }
wait_status() {
    i=0
    while [ "$(status_of "$1")" != "$2" ]; do
        i=$((i + 1))
        [ $i -lt 500 ] || fail "$1 did not become $2 (is $(status_of "$1"))"
        sleep 0.02
    done
}

step "create: set up, but the process has not run"
mkdir -p out
make_bundle box lifecycle-ctr '["/bin/sh", "-c", "touch /out/started; exec sleep 1000"]'
sed -i 's|"mounts": \[|"mounts": [{"destination": "/out", "source": "'"$PWD"'/out", "options": ["bind"]},|' box/config.json
husk create --bundle box --pid-file box.pid life || fail "husk create exited with $?"
expect_eq "status after create" "$(status_of life)" created
expect_eq "pid file" "$(cat box.pid)" "$(pid_of life)"
[ ! -e out/started ] || fail "the container process ran before start"
echo "ok: the process waits for start"

step "start"
husk start life || fail "husk start exited with $?"
i=0; while [ ! -e out/started ]; do i=$((i+1)); [ $i -lt 500 ] || fail "not started"; sleep 0.02; done
expect_eq "status after start" "$(status_of life)" running
husk list
husk list | grep -q "^life " || fail "husk list does not show the container"

step "its cgroup holds its processes"
cg=/sys/fs/cgroup/husk/life
[ -d $cg ] || fail "no cgroup $cg"
grep -qx "$(pid_of life)" $cg/cgroup.procs || fail "init not in $cg/cgroup.procs"
expect_eq "husk ps" "$(husk ps -f json life)" "[$(pid_of life)]"

step "exec: a new process in the container's namespaces and cgroup"
out=$(husk exec life sh -c 'echo $$; hostname; readlink /proc/self/ns/pid') \
    || fail "husk exec exited with $?"
echo "$out"
inner_pid=$(echo "$out" | sed -n 1p)
[ "$inner_pid" -gt 1 ] 2>/dev/null \
    || fail "the exec'd process is pid '$inner_pid', expected > 1 in the container's pid namespace"
echo "ok: exec'd process is pid $inner_pid inside"
expect_eq "hostname via exec" "$(echo "$out" | sed -n 2p)" lifecycle-ctr
expect_eq "pid namespace via exec" "$(echo "$out" | sed -n 3p)" "$(readlink /proc/$(pid_of life)/ns/pid)"
husk exec life sh -c 'exit 3'
expect_eq "exec exit status" "$?" 3
husk exec -d --pid-file exec.pid life sleep 1000 || fail "husk exec --detach exited with $?"
grep -qx "$(cat exec.pid)" $cg/cgroup.procs || fail "the exec'd process $(cat exec.pid) is not in $cg"
echo "ok: the detached exec'd process $(cat exec.pid) is in $cg"

step "pause and resume"
husk pause life || fail "husk pause exited with $?"
expect_eq "status after pause" "$(status_of life)" paused
expect_eq "cgroup frozen" "$(sed -n 's/^frozen //p' $cg/cgroup.events)" 1
husk exec life true 2> err.txt && fail "exec in a paused container succeeded"
expect_eq "exec when paused" "$(cat err.txt)" "husk: cannot exec in container life: it is paused"
husk resume life || fail "husk resume exited with $?"
expect_eq "status after resume" "$(status_of life)" running

step "refusals are one line and change nothing"
husk create --bundle box life 2> err.txt && fail "a second create with the same id succeeded"
expect_eq "second create" "$(cat err.txt)" "husk: container life exists already"
husk delete life 2> err.txt && fail "delete of a running container succeeded"
cat err.txt
expect_eq "status after refusals" "$(status_of life)" running

step "kill and delete"
husk kill life KILL || fail "husk kill exited with $?"
wait_status life stopped
husk delete life || fail "husk delete exited with $?"
[ ! -d $cg ] || fail "delete left the cgroup $cg"
husk state life 2> err.txt && fail "state of a deleted container succeeded"
expect_eq "state after delete" "$(cat err.txt)" "husk: container life does not exist"

step "--init: a small PID 1 that forwards signals and reaps"
make_bundle sleeper sleeper '["/bin/sleep", "1000"]'
husk run -d --bundle sleeper plain || fail "husk run -d exited with $?"
husk kill plain TERM
sleep 0.5
expect_eq "sleep as PID 1 ignores TERM" "$(status_of plain)" running
husk delete --force plain || fail "husk delete --force exited with $?"
husk run -d --init --bundle sleeper withinit || fail "husk run -d --init exited with $?"
husk kill withinit TERM
wait_status withinit stopped
echo "ok: with --init, TERM reached the process and the container stopped"
husk delete withinit || fail "husk delete exited with $?"
