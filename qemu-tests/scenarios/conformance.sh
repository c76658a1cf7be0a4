# timeout: 600
# A conformance suite of husk's own, modelled on the OCI runtime-tools validation
# tests: the same checks run against husk and, as a check of the suite itself,
# against crun and runc where the lab put them in the guest (x86_64). Each check
# prints "ok RUNTIME CHECK" or "not ok RUNTIME CHECK: why"; any "not ok" fails.
. /lab/lib.sh

failures=0
ok() { echo "ok $rt $1"; }
nok() { echo "not ok $rt $1: $2"; failures=$((failures + 1)); }

# bundle DIR ARGS_JSON [PROCESS_MEMBERS] [LINUX_MEMBERS] [MOUNT_ENTRIES]
# (PROCESS_MEMBERS replace the default env and cwd: JSON keys must not repeat)
bundle() {
    process=${3:-'"env": ["PATH=/bin"], "cwd": "/"'}
    rm -rf "$1" && mkdir -p "$1" && cp -a /lab/rootfs "$1/rootfs"
    cat > "$1/config.json" <<JSON
{
  "ociVersion": "1.0.2",
  "process": {
    "terminal": false,
    "args": $2, $process
  },
  "root": {"path": "rootfs", "readonly": false},
  "hostname": "conform",
  "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}${5:+, $5}],
  "linux": {
    "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "ipc"}, {"type": "network"}]${4:+,
    $4}
  }
}
JSON
}

# out RUNTIME-ARGS...: runs the container of ./b to its end, output in out.txt.
run_b() { $R run --bundle "$PWD/b" "$1" > out.txt 2> err.txt; }
# field NAME: a member of the JSON object on stdin (pretty-printed or not).
field() { tr -d '\n\t ' | sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p"; }

conform() {
    rt=$1
    R="$1 --root /run/conform-$1"

    # lifecycle, state fields and pid file
    bundle b '["/bin/sleep", "1000"]'
    if $R create --bundle "$PWD/b" --pid-file "$PWD/pid" life 2> err.txt; then
        st=$($R state life)
        [ "$(echo "$st" | field status)" = created ] && ok create-state || nok create-state "$st"
        [ "$(echo "$st" | field id)" = life ] && ok state-id || nok state-id "$st"
        [ "$(echo "$st" | field bundle)" = "$PWD/b" ] && ok state-bundle || nok state-bundle "$st"
        [ -n "$(echo "$st" | field ociVersion)" ] && ok state-ociVersion || nok state-ociVersion "$st"
        [ "$(cat pid)" = "$(echo "$st" | field pid)" ] && ok pid-file || nok pid-file "$(cat pid) vs $st"
        $R start life && [ "$($R state life | field status)" = running ] && ok start || nok start "$($R state life)"
        $R kill life KILL
        i=0; while [ "$($R state life | field status)" != stopped ] && [ $i -lt 250 ]; do sleep 0.02; i=$((i+1)); done
        [ "$($R state life | field status)" = stopped ] && ok kill || nok kill "$($R state life)"
        $R delete life && ! $R state life > /dev/null 2>&1 && ok delete || nok delete "state still there"
    else
        nok create "$(cat err.txt)"
    fi

    # exit status, hostname, env, cwd, user
    bundle b '["/bin/sh", "-c", "exit 3"]'
    run_b exit; s=$?; [ $s -eq 3 ] && ok exit-status || nok exit-status "got $s: $(cat err.txt)"
    bundle b '["/bin/sh", "-c", "hostname; echo $FOO; pwd; id -u"]' '"env": ["PATH=/bin", "FOO=bar"], "cwd": "/tmp", "user": {"uid": 1000, "gid": 1000}'
    if run_b proc; then
        [ "$(sed -n 1p out.txt)" = conform ] && ok hostname || nok hostname "$(sed -n 1p out.txt)"
        [ "$(sed -n 2p out.txt)" = bar ] && ok env || nok env "$(sed -n 2p out.txt)"
        [ "$(sed -n 3p out.txt)" = /tmp ] && ok cwd || nok cwd "$(sed -n 3p out.txt)"
        [ "$(sed -n 4p out.txt)" = 1000 ] && ok user || nok user "$(sed -n 4p out.txt)"
    else
        nok process "$(cat err.txt)"
    fi

    # mounts, masked and read-only paths, read-only root
    bundle b '["/bin/sh", "/probe.sh"]' '' \
        '"maskedPaths": ["/etc/secret"], "readonlyPaths": ["/proc/sys"]' \
        '{"destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=1777", "size=1m"]}'
    sed -i 's/"readonly": false/"readonly": true/' b/config.json
    echo secret > b/rootfs/etc/secret
    cat > b/rootfs/probe.sh <<'PROBE'
echo mnt=$(grep -c "^tmpfs /mnt tmpfs .*nosuid" /proc/mounts)
echo masked=$(cat /etc/secret | wc -c)
echo rosys=$( (echo x > /proc/sys/kernel/domainname) 2>&1 | grep -c "Read-only file system")
echo roroot=$(touch /x 2>&1 | grep -c "Read-only file system")
PROBE
    if run_b mounts; then
        v() { sed -n "s/^$1=//p" out.txt; }
        [ "$(v mnt)" = 1 ] && ok mount-tmpfs || nok mount-tmpfs "$(cat out.txt)"
        [ "$(v masked)" = 0 ] && ok masked-path || nok masked-path "$(cat out.txt)"
        [ "$(v rosys)" = 1 ] && ok readonly-path || nok readonly-path "$(cat out.txt)"
        [ "$(v roroot)" = 1 ] && ok readonly-root || nok readonly-root "$(cat out.txt)"
    else
        nok mounts "$(cat err.txt)"
    fi

    # capabilities and rlimits
    bundle b '["/bin/sh", "-c", "grep -E \"^Cap(Eff|Prm|Bnd)\" /proc/self/status | tr -d \"\\t\"; ulimit -n"]' \
        '"env": ["PATH=/bin"], "cwd": "/", "capabilities": {"bounding": ["CAP_CHOWN", "CAP_KILL"], "effective": ["CAP_CHOWN", "CAP_KILL"], "permitted": ["CAP_CHOWN", "CAP_KILL"]}, "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 512, "soft": 512}]'
    if run_b caps; then
        [ "$(grep -c ':0000000000000021$' out.txt)" = 3 ] && ok capabilities || nok capabilities "$(cat out.txt)"
        [ "$(tail -n 1 out.txt)" = 512 ] && ok rlimits || nok rlimits "$(tail -n 1 out.txt)"
    else
        nok caps "$(cat err.txt)"
    fi

    # seccomp: mkdir denied with EACCES
    bundle b '["/bin/mkdir", "/tmp/x"]' '' \
        '"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}'
    run_b sec
    grep -q "Permission denied" out.txt err.txt && ok seccomp || nok seccomp "$(cat out.txt err.txt)"

    # hooks: a prestart hook runs in the runtime's namespaces
    bundle b '["/bin/true"]'
    sed -i 's|"hostname": "conform",|"hostname": "conform", "hooks": {"prestart": [{"path": "/bin/touch", "args": ["touch", "'"$PWD"'/hook-ran"]}]},|' b/config.json
    rm -f hook-ran
    run_b hooks && [ -e hook-ran ] && ok hooks || nok hooks "$(cat err.txt)"
}

runtimes=husk
for peer in crun runc; do command -v $peer > /dev/null && runtimes="$runtimes $peer"; done
[ "$runtimes" = husk ] && echo "(crun and runc are in the x86_64 guest only: husk alone here)"
for r in $runtimes; do
    step "conformance: $r"
    conform $r
done
[ $failures -eq 0 ] || fail "$failures conformance checks failed"
