# timeout: 300
# The config `husk spec` writes, run on the device: default capabilities, no new
# privileges, the seccomp deny-list (the syscall tables of this architecture on a
# real kernel), a read-only root, masked /proc paths, a minimal /dev and the
# device rules (eBPF). Then a profile that denies mkdir with a chosen errno, and
# linux.devices nodes that the device rules allow or deny, also after update.
. /lab/lib.sh

step "husk spec writes a config, and never over one"
mkdir spec && cp -a /lab/rootfs spec/rootfs && cd spec || fail "cannot make the bundle"
husk spec || fail "husk spec exited with $?"
husk spec 2> err.txt && fail "a second husk spec overwrote config.json"
expect_eq "second husk spec" "$(cat err.txt)" "husk: ./config.json exists already: remove it first"
cat > rootfs/probe.sh <<'PROBE'
grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status | tr -d '\t' | tr ':' '='
touch /x 2>/dev/null && echo root=writable || echo root=readonly
unshare -u true 2>/dev/null && echo unshare=allowed || echo unshare=denied
echo kcore=$(cat /proc/kcore | wc -c)
[ -c /dev/null ] && echo devnull=char || echo devnull=missing
mknod /dev/sda b 8 0 2>/dev/null && echo mknod_disk=allowed || echo mknod_disk=denied
mknod /dev/null2 c 1 3 2>/dev/null && echo mknod_null=allowed || echo mknod_null=denied
(echo x > /dev/null2) 2>/dev/null && echo null2=writable || echo null2=denied
echo ulimit=$(ulimit -n)
PROBE
sed -i 's|"args": \["sh"\]|"args": ["/bin/sh", "/probe.sh"]|' config.json
husk run probe > out.txt 2> err.txt || fail "husk run exited with $?: $(cat err.txt)"
cat out.txt
value() { sed -n "s/^$1=//p" out.txt; }
# Docker's default capabilities: bits 0 1 3-8 10 13 18 27 29 31.
expect_eq "effective capabilities" "$(value CapEff)" 00000000a80425fb
expect_eq "bounding capabilities" "$(value CapBnd)" 00000000a80425fb
expect_eq "no new privileges" "$(value NoNewPrivs)" 1
expect_eq "seccomp mode (2: filter)" "$(value Seccomp)" 2
expect_eq "root filesystem" "$(value root)" readonly
expect_eq "unshare under the default profile" "$(value unshare)" denied
expect_eq "bytes read from masked /proc/kcore" "$(value kcore)" 0
expect_eq "/dev/null" "$(value devnull)" char
expect_eq "RLIMIT_NOFILE" "$(value ulimit)" 1024
# CAP_MKNOD is kept, and the device rules decide which nodes it can make.
expect_eq "mknod of a disk (8:0) under deny-all" "$(value mknod_disk)" denied
expect_eq "mknod of null (1:3), a default device" "$(value mknod_null)" allowed
expect_eq "writing the node made of null" "$(value null2)" writable
cd ..

step "a profile that denies mkdir with EACCES"
make_bundle deny deny '["/bin/mkdir", "/tmp/x"]' \
    '"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}'
husk run --bundle deny deny > out.txt 2>&1 && fail "mkdir succeeded under the profile"
cat out.txt
grep -q "Permission denied" out.txt || fail "mkdir did not fail with EACCES"
echo "ok: mkdir failed with EACCES"

# A container whose linux.devices makes /dev/null and /dev/kmsg (1:11, not a
# default device), under deny-all plus RULES_JSON; its process runs SCRIPT.
devices_bundle() {
    make_bundle "$1" "$1" "[\"/bin/sh\", \"-c\", \"$3\"]" \
        '"devices": [{"path": "/dev/null", "type": "c", "major": 1, "minor": 3},
                     {"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 420}],
         "resources": {"devices": [{"allow": false, "access": "rwm"}'"$2"']}'
}
# (A failed redirection ends the shell, so each open is in a subshell.)
PROBE='(true < /dev/kmsg) && echo kmsg_read=ok; (true > /dev/kmsg) && echo kmsg_write=ok; echo x > /dev/null && echo null=ok; ls -ln /dev/kmsg'

step "linux.devices makes /dev/kmsg, the device rules deny opening it"
devices_bundle denied '' "$PROBE"
husk run --bundle denied denied > out.txt 2>&1 || fail "husk run exited with $?: $(cat out.txt)"
cat out.txt
grep -q "can't open.*/dev/kmsg.*: Operation not permitted" out.txt || fail "opening /dev/kmsg was not refused with EPERM"
grep -q "kmsg_" out.txt && fail "/dev/kmsg opened under deny-all"
grep -q "^null=ok" out.txt || fail "/dev/null (a default device) did not work"
grep -q "^crw-r--r-- .* 1, *11 " out.txt || fail "/dev/kmsg is not the character device 1:11 of mode 644"
echo "ok: /dev/kmsg refused with EPERM, /dev/null works"

step "a rule allowing reads of 1:11 lets /dev/kmsg be read, not written"
devices_bundle reader ', {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "r"}' "$PROBE"
husk run --bundle reader reader > out.txt 2>&1 || fail "husk run exited with $?: $(cat out.txt)"
cat out.txt
grep -q "^kmsg_read=ok" out.txt || fail "reading /dev/kmsg was refused"
grep -q "^kmsg_write=ok" out.txt && fail "writing /dev/kmsg was allowed"
grep -q "can't create.*/dev/kmsg.*: Operation not permitted" out.txt || fail "writing /dev/kmsg was not refused with EPERM"
echo "ok: /dev/kmsg readable, not writable"

step "husk update replaces the device rules of a running container"
devices_bundle upd '' 'sleep 1000'
husk create --bundle upd upd || fail "husk create exited with $?"
husk start upd || fail "husk start exited with $?"
husk exec upd sh -c 'true < /dev/kmsg' 2> err.txt && fail "/dev/kmsg opened before the update"
cat err.txt
echo '{"devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "rw"}]}' \
    | husk update --resources - upd || fail "husk update exited with $?"
husk exec upd sh -c 'true < /dev/kmsg && true > /dev/kmsg' || fail "/dev/kmsg still refused after the update"
echo '{"devices": [{"allow": true, "access": "rwm"}]}' | husk update --resources - upd \
    || fail "husk update to allow all exited with $?"
husk exec upd sh -c 'mknod /dev/sdz b 8 0 && rm /dev/sdz' || fail "mknod of a disk refused with every device allowed"
echo '{"devices": [{"allow": false, "access": "rwm"}]}' | husk update --resources - upd \
    || fail "the second husk update exited with $?"
husk exec upd sh -c 'true < /dev/kmsg' 2> /dev/null && fail "/dev/kmsg opened after the rules were taken back"
husk exec upd sh -c 'echo x > /dev/null' || fail "/dev/null refused after the updates"
husk kill upd KILL; husk delete --force upd || fail "husk delete exited with $?"
echo "ok: update allowed /dev/kmsg, then every device, then denied /dev/kmsg again"
