# timeout: 300
# cgroup v2 limits enforced for real: a memory hog is OOM-killed inside its
# cgroup while husk survives, a fork bomb stops at pids.max, cpu.max throttles.
. /lab/lib.sh

step "memory.max: a memory hog is OOM-killed, husk reports it"
make_bundle hog hog '["/bin/sh", "-c", "a=xxxxxxxxxxxxxxxx; while true; do a=$a$a; done"]' \
    '"resources": {"memory": {"limit": 33554432, "swap": 33554432}}'
husk create --bundle hog hog || fail "husk create exited with $?"
expect_eq "memory.max" "$(cat /sys/fs/cgroup/husk/hog/memory.max)" 33554432
husk start hog || fail "husk start exited with $?"
i=0
while husk state hog | grep -q '"status":"running"'; do
    i=$((i + 1)); [ $i -lt 1500 ] || fail "the hog was not killed"; sleep 0.02
done
oom_kills=$(sed -n 's/^oom_kill //p' /sys/fs/cgroup/husk/hog/memory.events)
echo "memory.events: $(tr '\n' ' ' < /sys/fs/cgroup/husk/hog/memory.events)"
[ "${oom_kills:-0}" -ge 1 ] || fail "no oom_kill counted in memory.events"
echo "ok: oom_kill = $oom_kills"
husk state hog
husk state hog | grep -q "\"oomKills\":$oom_kills" || fail "husk state does not show the OOM kills"
husk list
husk list | grep -Eq "^hog +0 +stopped +$oom_kills " || fail "husk list does not show the OOM kills"
husk delete hog || fail "husk delete exited with $?"
husk --version > /dev/null || fail "husk does not run after the OOM kill"

step "pids.max: a fork bomb stops at the limit"
# The inner shell forks until it cannot (and then dies); the outer one becomes a
# sleep without forking, so the container lives on with the limit reached.
make_bundle bomb bomb '["/bin/sh", "-c", "sh /bomb.sh 2>/dev/null; exec sleep 60"]' \
    '"resources": {"pids": {"limit": 16}}'
echo 'for i in $(seq 1 40); do sleep 60 & done' > bomb/rootfs/bomb.sh
husk run -d --bundle bomb bomb || fail "husk run -d exited with $?"
sleep 2
pids=$(cat /sys/fs/cgroup/husk/bomb/pids.current)
events=$(sed -n 's/^max //p' /sys/fs/cgroup/husk/bomb/pids.events)
echo "pids.current=$pids pids.events max=$events"
[ "$pids" -le 16 ] || fail "pids.current $pids exceeds pids.max 16"
[ "$pids" -ge 10 ] || fail "pids.current $pids: the bomb did not run (expected about 15)"
[ "${events:-0}" -ge 1 ] || fail "no fork was refused (pids.events max=$events)"
husk delete --force bomb || fail "husk delete --force exited with $?"
[ ! -d /sys/fs/cgroup/husk/bomb ] || fail "delete --force left the cgroup"

step "cpu.max: a busy loop is throttled to 20%"
make_bundle busy busy '["/bin/sh", "-c", "while :; do :; done"]' \
    '"resources": {"cpu": {"quota": 20000, "period": 100000}}'
husk run -d --bundle busy busy || fail "husk run -d exited with $?"
expect_eq "cpu.max" "$(cat /sys/fs/cgroup/husk/busy/cpu.max)" "20000 100000"
sleep 3
throttled=$(sed -n 's/^nr_throttled //p' /sys/fs/cgroup/husk/busy/cpu.stat)
usage=$(sed -n 's/^usage_usec //p' /sys/fs/cgroup/husk/busy/cpu.stat)
echo "cpu.stat: nr_throttled=$throttled usage_usec=$usage over about 3 s"
[ "${throttled:-0}" -ge 1 ] || fail "the busy loop was never throttled"
[ "$usage" -lt 1500000 ] || fail "usage $usage us is far above 20% of 3 s"
husk delete --force busy || fail "husk delete --force exited with $?"

step "update: new limits on a running container, the others stay"
make_bundle upd upd '["/bin/sh", "-c", "exec sleep 60"]' '"resources": {"memory": {"limit": 67108864}}'
husk run -d --bundle upd upd || fail "husk run -d exited with $?"
husk update --pids-limit 5 upd || fail "husk update --pids-limit exited with $?"
expect_eq "pids.max after update" "$(cat /sys/fs/cgroup/husk/upd/pids.max)" 5
expect_eq "memory.max kept" "$(cat /sys/fs/cgroup/husk/upd/memory.max)" 67108864
echo '{"cpu": {"quota": 10000, "period": 100000}}' | husk update --resources - upd \
    || fail "husk update --resources - exited with $?"
expect_eq "cpu.max after update" "$(cat /sys/fs/cgroup/husk/upd/cpu.max)" "10000 100000"
echo '{"memory": {"swappiness": 10}}' | husk update -r - upd 2> err.txt && fail "a v1-only limit was accepted"
cat err.txt
[ "$(wc -l < err.txt)" -eq 1 ] || fail "the error is not one line"
grep -q swappiness err.txt || fail "the error does not name the field"
expect_eq "pids.max after a refused update" "$(cat /sys/fs/cgroup/husk/upd/pids.max)" 5
husk delete --force upd || fail "husk delete --force exited with $?"
