# timeout: 180
# The busybox init script (Buildroot's S95husk, as rcS and rcK run it)
# starts `husk daemon`, reports it running, and stops it with SIGTERM, cleanly
# and within its timeout; twice, so a stale pid file does not confuse it.
. /lab/lib.sh

script=/lab/board-configs/buildroot/package/husk/S95husk
[ -x "$script" ] || fail "$script missing from the guest"
if ! husk daemon --help > /dev/null 2>&1; then
    skip "husk has no 'daemon' command yet (husk daemon --help fails): the init script cannot start it"
fi

mkdir -p /etc/init.d /etc/default
cp "$script" /etc/init.d/S95husk
cat > /etc/default/husk <<CONF
HUSK_DATA_DIR=$PWD/data
HUSK_ROOT=$PWD/root
HUSK_STOP_TIMEOUT=20
CONF

for round in 1 2; do
    step "round $round: /etc/init.d/S95husk start"
    /etc/init.d/S95husk start || fail "start exited with $?"
    [ -s /var/run/husk.pid ] || fail "no pid file"
    pid=$(cat /var/run/husk.pid)
    sleep 2
    kill -0 "$pid" 2>/dev/null || fail "husk daemon (pid $pid) is not running 2s after start"
    expect_eq "the process" "$(tr '\0' ' ' < "/proc/$pid/cmdline")" \
        "/usr/bin/husk --root $PWD/root daemon --data-dir $PWD/data "
    /etc/init.d/S95husk status || fail "status says not running"
    /etc/init.d/S95husk start | grep -q "already running" || fail "a second start did not notice"

    step "round $round: /etc/init.d/S95husk stop"
    /etc/init.d/S95husk stop || fail "stop exited with $? (the daemon ignored SIGTERM?)"
    kill -0 "$pid" 2>/dev/null && fail "husk daemon (pid $pid) still runs after stop"
    [ ! -e /var/run/husk.pid ] || fail "the pid file was left behind"
    /etc/init.d/S95husk status && fail "status says running after stop"
    echo "ok: stopped"
done
