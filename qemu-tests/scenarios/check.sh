# timeout: 120
# husk check on the lab's Debian kernel: every required feature reported
# present and exit 0, plain text within 80 columns, the --json document, the
# board fragment of this QEMU machine met (as a fragment and through its board
# TOML), a fragment the kernel does not meet exiting 3, and a required feature
# taken away (cgroup2 unmounted in a private mount namespace) exiting 2.
. /lab/lib.sh

board=$(cat /lab/board) || fail "no /lab/board: the lab did not say which board this is"
boards=/lab/board-configs

step "husk check"
husk check > check.txt 2> err.txt
rc=$?
cat check.txt
[ $rc -eq 0 ] || fail "husk check exited with $rc: $(cat err.txt)"
expect_eq "kernel config read" "$(sed -n 's/^kernel config: //p' check.txt)" "/boot/config-$(uname -r)"
for feature in "mount namespace" "pid namespace" "uts namespace" "ipc namespace" \
    "network namespace" "cgroup namespace" "cgroup2 at /sys/fs/cgroup" \
    "pids controller" "seccomp filter"; do
    grep -Eq "^  $feature +required +yes\$" check.txt ||
        fail "required feature '$feature' not reported present"
    echo "ok: $feature"
done
# The lab loads these modules at boot and enables every controller.
for feature in "user namespace" "memory controller" "cpu controller" "io controller" \
    overlayfs squashfs "loop devices" "veth pairs" bridge; do
    grep -Eq "^  $feature +optional +yes\$" check.txt ||
        fail "optional feature '$feature' not reported present"
    echo "ok: $feature"
done
grep -q "^Ready: every required feature is present" check.txt || fail "no 'Ready' summary"
wide=$(awk 'length > 80' check.txt)
[ -z "$wide" ] || fail "lines wider than 80 columns: $wide"
if grep -q "$(printf '\033')" check.txt; then
    fail "colour codes written to a file"
fi

step "husk check --json"
husk check --json > check.json 2> err.txt
rc=$?
cat check.json
echo
[ $rc -eq 0 ] || fail "husk check --json exited with $rc: $(cat err.txt)"
for member in '"schemaVersion":1' '"ok":true' '"exitCode":0' '"board":null' \
    "\"config\":\"/boot/config-$(uname -r)\"" \
    '"id":"seccomp","name":"seccomp filter","group":"security","required":true,"status":"yes"'; do
    grep -qF "$member" check.json || fail "--json lacks $member"
    echo "ok: $member"
done

step "husk check --board $boards/$board.config"
husk check --board "$boards/$board.config" > board.txt 2> err.txt
rc=$?
tail -n 3 board.txt
[ $rc -eq 0 ] || fail "husk check --board exited with $rc: $(cat board.txt err.txt)"
n=$(grep -c '^CONFIG_' "$boards/$board.config")
grep -q "^$n of $n symbols as the fragment sets them\.\$" board.txt ||
    fail "expected all $n symbols of the fragment met"

step "husk check --board $boards/$board.toml (its kernel_fragment line)"
husk check --board "$boards/$board.toml" --json > board.json 2> err.txt
rc=$?
[ $rc -eq 0 ] || fail "husk check --board TOML exited with $rc: $(cat err.txt)"
grep -qF "\"board\":{\"fragment\":\"$boards/$board.config\",\"ok\":true" board.json ||
    fail "the TOML did not lead to its fragment: $(cat board.json)"
echo "ok: $board.toml names $board.config, met"

step "a fragment the kernel does not meet exits 3"
printf '# CONFIG_PID_NS is not set\nCONFIG_NET_NS=y\n' > differ.config
husk check --board differ.config > differ.txt 2> err.txt
rc=$?
tail -n 3 differ.txt
expect_eq "exit status" "$rc" 3
grep -q "^  CONFIG_PID_NS: wanted n, running y\$" differ.txt || fail "CONFIG_PID_NS not named"

step "a required feature missing exits 2 (cgroup2 unmounted, privately)"
if ! unshare -m true 2>/dev/null; then
    echo "unshare -m not available in this busybox: step left out"
else
    unshare -m sh -c 'umount /sys/fs/cgroup && husk check' > missing.txt 2> err.txt
    rc=$?
    grep -A2 "cgroup2 at" missing.txt
    expect_eq "exit status" "$rc" 2
    grep -q "^NOT READY: missing required cgroup2 at /sys/fs/cgroup" missing.txt ||
        fail "the summary does not name cgroup2: $(tail -n 2 missing.txt)"
    [ -e /sys/fs/cgroup/cgroup.controllers ] || fail "cgroup2 unmounted outside the namespace"
fi
