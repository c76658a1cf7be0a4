# timeout: 180
# The config `husk spec` writes, run on the device: default capabilities, no new
# privileges, the seccomp deny-list (the syscall tables of this architecture on a
# real kernel), a read-only root, masked /proc paths and a minimal /dev. Then a
# profile that denies mkdir with a chosen errno.
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
echo ulimit=$(ulimit -n)
PROBE
sed -i 's|"args": \["sh"\]|"args": ["/bin/sh", "/probe.sh"]|' config.json
husk run probe > out.txt 2> err.txt || fail "husk run exited with $?: $(cat err.txt)"
cat out.txt
value() { sed -n "s/^$1=//p" out.txt; }
# Docker's default capabilities less CAP_MKNOD: bits 0 1 3-8 10 13 18 29 31.
expect_eq "effective capabilities" "$(value CapEff)" 00000000a00425fb
expect_eq "bounding capabilities" "$(value CapBnd)" 00000000a00425fb
expect_eq "no new privileges" "$(value NoNewPrivs)" 1
expect_eq "seccomp mode (2: filter)" "$(value Seccomp)" 2
expect_eq "root filesystem" "$(value root)" readonly
expect_eq "unshare under the default profile" "$(value unshare)" denied
expect_eq "bytes read from masked /proc/kcore" "$(value kcore)" 0
expect_eq "/dev/null" "$(value devnull)" char
expect_eq "RLIMIT_NOFILE" "$(value ulimit)" 1024
cd ..

step "a profile that denies mkdir with EACCES"
make_bundle deny deny '["/bin/mkdir", "/tmp/x"]' \
    '"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}'
husk run --bundle deny deny > out.txt 2>&1 && fail "mkdir succeeded under the profile"
cat out.txt
grep -q "Permission denied" out.txt || fail "mkdir did not fail with EACCES"
echo "ok: mkdir failed with EACCES"
