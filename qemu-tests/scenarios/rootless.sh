# timeout: 180
# Rootless: husk run by an unprivileged user (uid 1000) with the config
# `husk spec --rootless` writes: a user namespace that maps only that user, to
# root. Then the same in a cgroup subtree delegated to the user (chown), which
# is how limits work rootless; and the errors when either is missing.
. /lab/lib.sh

U=1000
grep -q "^user:" /etc/passwd 2>/dev/null || {
    grep -q "^root:" /etc/passwd 2>/dev/null || echo "root:x:0:0:root:/root:/bin/sh" >> /etc/passwd
    echo "user:x:$U:$U:user:/tmp:/bin/sh" >> /etc/passwd
}
export XDG_RUNTIME_DIR=/tmp/xdg-$U
mkdir -p "$XDG_RUNTIME_DIR" && chown $U:$U "$XDG_RUNTIME_DIR"
# as_user CMD: runs CMD (a shell command line) as uid 1000, environment kept.
as_user() { su -p -s /bin/sh user -c "$1"; }
B=$PWD/bundle
mkdir -p "$B" && cp -a /lab/rootfs "$B/rootfs" && chown $U:$U "$B" || fail "cannot make the bundle"
mkdir -p "$PWD/hostdir" && echo secret > "$PWD/hostdir/file" && chmod 600 "$PWD/hostdir/file"

step "uid 1000 writes the rootless config"
as_user "cd $B && husk spec --rootless" || fail "husk spec --rootless exited with $?"
grep -q '"hostID": 1000' "$B/config.json" || fail "the maps are not uid 1000's: $(grep -A1 Mappings "$B/config.json")"
cat > "$B/rootfs/probe.sh" <<'PROBE'
echo id=$(id -u):$(id -g)
echo map=$(tr -s ' ' < /proc/self/uid_map | sed 's/^ //')
echo x > /dev/null && echo devnull=ok
touch /x 2>/dev/null && echo root=writable || echo root=readonly
cat /host/file >/dev/null 2>&1 && echo hostfile=read || echo hostfile=denied
touch /host/new 2>/dev/null && echo hostdir=writable || echo hostdir=denied
PROBE
sed -i -e 's|"args": \["sh"\]|"args": ["/bin/sh", "/probe.sh"]|' \
    -e "s|\"mounts\": \[|\"mounts\": [{\"destination\": \"/host\", \"source\": \"$PWD/hostdir\", \"options\": [\"bind\"]},|" \
    "$B/config.json"
mkdir -p "$B/rootfs/host"

step "the container runs as root of its user namespace, uid 1000 on the device"
as_user "husk run --bundle $B rl" > out.txt 2> err.txt || fail "husk run exited with $?: $(cat err.txt)"
cat out.txt
value() { sed -n "s/^$1=//p" out.txt; }
expect_eq "ids inside" "$(value id)" 0:0
expect_eq "uid map" "$(value map)" "0 1000 1"
expect_eq "/dev/null" "$(value devnull)" ok
expect_eq "root filesystem" "$(value root)" readonly
expect_eq "a root-only host file" "$(value hostfile)" denied
expect_eq "a root-owned host directory" "$(value hostdir)" denied
[ -e "$PWD/hostdir/new" ] && fail "the container wrote to the host directory"
[ -e "$XDG_RUNTIME_DIR/husk/rl" ] && fail "run left its state in $XDG_RUNTIME_DIR/husk"
echo "ok: state kept in \$XDG_RUNTIME_DIR/husk and removed"

step "detached: the host sees uid 1000; exec, state and delete work rootless"
sed -i 's|"args": \["/bin/sh", "/probe.sh"\]|"args": ["sleep", "300"]|' "$B/config.json"
as_user "husk run -d --bundle $B rl" || fail "husk run -d exited with $?"
pid=$(as_user "husk state rl" | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')
[ -n "$pid" ] || fail "no pid in husk state: $(as_user 'husk state rl')"
expect_eq "the container's uids seen from the host" \
    "$(sed -n 's/^Uid:[[:space:]]*//p' /proc/$pid/status | tr -s '\t ' ' ')" "1000 1000 1000 1000"
expect_eq "id -u by exec" "$(as_user 'husk exec rl id -u')" 0
as_user "husk delete --force rl" || fail "husk delete --force exited with $?"
[ -d /proc/$pid ] && fail "the container outlived delete --force"
echo "ok: deleted"

step "limits without a delegated cgroup are an error naming the directory"
sed -i 's|"uidMappings"|"resources": {"pids": {"limit": 16}}, "uidMappings"|' "$B/config.json"
as_user "husk run --bundle $B rl" > out.txt 2>&1 && fail "limits were accepted without a cgroup"
cat out.txt
grep -q "is not writable; delegate it to this user" out.txt || fail "unexpected error"

step "a cgroup subtree delegated to uid 1000 takes the limits"
C=/sys/fs/cgroup/user$U
mkdir -p "$C/session" && echo +pids > "$C/cgroup.subtree_control" || fail "cannot make $C"
chown -R $U:$U "$C"
sed -i 's|"resources"|"cgroupsPath": "/user1000/rl", "resources"|' "$B/config.json"
# Moving a process needs write access to the cgroup.procs of the common
# ancestor: as systemd does for a user session, root puts the user's shell
# (here this scenario's) into the delegated subtree first.
echo $$ > "$C/session/cgroup.procs" || fail "cannot move the shell into $C/session"
as_user "husk run -d --bundle $B rl" || fail "husk run -d in the delegated cgroup exited with $?"
expect_eq "pids.max of the container's cgroup" "$(cat $C/rl/pids.max)" 16
pid=$(as_user "husk state rl" | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')
grep -qx "$pid" "$C/rl/cgroup.procs" || fail "the container ($pid) is not in $C/rl"
echo "ok: the container is in $C/rl"
as_user "husk exec rl sh -c 'for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do sleep 30 </dev/null & done'" > out.txt 2>&1
cat out.txt
grep -q "can't fork" out.txt || fail "20 processes started under pids.max 16"
[ "$(cat $C/rl/pids.current)" -le 16 ] || fail "pids.current is $(cat $C/rl/pids.current), above 16"
echo "ok: forks stop at pids.max"
as_user "husk delete --force rl" || fail "husk delete --force exited with $?"
[ -d "$C/rl" ] && fail "delete left $C/rl"
echo "ok: the cgroup is gone"

step "a config without a user namespace is refused by name"
make_bundle plain plain '["true"]'
chown $U:$U plain
as_user "husk run --bundle $PWD/plain plain" > out.txt 2>&1 && fail "ran without a user namespace"
expect_eq "error" "$(cat out.txt)" \
    "husk: running as uid 1000, not root: config.json needs a new user namespace with uid and gid maps ('husk spec --rootless' writes one)"
