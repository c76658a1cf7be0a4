# timeout: 120
# The lab measures something real: husk runs on this architecture, cgroup v2 has
# the controllers husk needs, and a process started by husk in new mount, pid,
# uts, ipc and net namespaces sees itself as PID 1 with its own hostname.
. /lab/lib.sh

step "husk --version"
version=$(husk --version) || fail "husk --version exited with $?"
echo "$version"
case "$version" in
    "husk "*) ;;
    *) fail "husk --version printed '$version'" ;;
esac

step "cgroup v2 controllers"
controllers=$(cat /sys/fs/cgroup/cgroup.controllers)
echo "cgroup.controllers: $controllers"
for c in memory pids cpu io; do
    case " $controllers " in
        *" $c "*) echo "ok: controller $c" ;;
        *) fail "cgroup v2 controller '$c' missing from /sys/fs/cgroup/cgroup.controllers" ;;
    esac
done

step "kernel modules the lab loads"
for fs in overlay squashfs; do
    grep -qw "$fs" /proc/filesystems || fail "filesystem $fs not available (module not loaded?)"
    echo "ok: filesystem $fs"
done

step "a container in new mount, pid, uts, ipc and net namespaces"
make_bundle bundle smoke-ctr \
    '["/bin/sh", "-c", "echo pid=$$; echo hostname=$(hostname); for n in mnt pid uts ipc net; do echo ns.$n=$(readlink /proc/self/ns/$n); done"]'
husk run --bundle bundle smoke > out.txt 2> err.txt
rc=$?
cat out.txt
[ $rc -eq 0 ] || fail "husk run exited with $rc: $(cat err.txt)"
expect_eq "pid inside the container" "$(sed -n 's/^pid=//p' out.txt)" 1
expect_eq "hostname inside the container" "$(sed -n 's/^hostname=//p' out.txt)" smoke-ctr
expect_eq "hostname of the device afterwards" "$(hostname)" lab
for n in mnt pid uts ipc net; do
    inside=$(sed -n "s/^ns.$n=//p" out.txt)
    [ -n "$inside" ] || fail "no $n namespace reported from inside"
    expect_ne "$n namespace inside and outside" "$inside" "$(readlink /proc/self/ns/$n)"
done
