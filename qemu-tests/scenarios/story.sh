# timeout: 300
# The device story, as the README's first command shows it: the device boots,
# husk checks its kernel, runs a container from an OCI bundle, imports an
# image, and its supervisor keeps the image's container running: restarted
# when it dies, its health and logs on the console. Later issues grow this
# into the whole update story (install, update by delta, roll back).
. /lab/lib.sh

step "the device"
echo "kernel $(uname -r) on $(uname -m); $(husk --version)"
husk check | tail -n 1

step "run a container"
make_bundle hello hello-device \
    '["/bin/sh", "-c", "echo \"hello from $(hostname), running as PID $$ in its own namespaces\"; ls /"]'
husk run --bundle hello hello || fail "husk run exited with $?"

step "import an image (a docker save archive made here from busybox)"
data=$PWD/data
case $(uname -m) in
    x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; armv7l | armv8l) arch=arm ;; *) arch=$(uname -m) ;;
esac
cp -a /lab/rootfs root && ln -s busybox root/bin/httpd
mkdir -p saved/l1 && tar -C root -cf saved/l1/layer.tar . || fail "cannot make the layer"
diff=$(sha256sum saved/l1/layer.tar | cut -d' ' -f1)
printf '{"architecture":"%s","os":"linux","config":{"Cmd":["sh","-c","mkdir -p /www; echo hello > /www/index.html; echo serving; exec httpd -f -p 127.0.0.1:8080 -h /www"],"Env":["PATH=/bin"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$arch" "$diff" > saved/config.json
cfg=$(sha256sum saved/config.json | cut -d' ' -f1) && mv saved/config.json "saved/$cfg.json"
printf '[{"Config":"%s.json","RepoTags":["web:1"],"Layers":["l1/layer.tar"]}]' "$cfg" > saved/manifest.json
tar -C saved -cf web.tar manifest.json "$cfg.json" l1 || fail "cannot write web.tar"
husk --data-dir "$data" image import web.tar || fail "husk image import exited with $?"
husk --data-dir "$data" image ls

step "the supervisor runs it, with a health check"
cat > "$data/desired.json" <<JSON
{"containers": [{"name": "web", "image": "web:1", "restart": "always",
  "backoff": {"initial": "500ms", "max": "2s"},
  "health": {"http": {"port": 8080, "path": "/index.html"}, "interval": "1s",
             "timeout": "5s", "retries": 2, "startPeriod": "2s"}}]}
JSON
husk daemon --data-dir "$data" 2> daemon.log &
daemon=$!
# until_status TEXT: waits (60 s at most) for the daemon's status to say TEXT.
until_status() {
    i=0
    until husk daemon status --data-dir "$data" --json 2>/dev/null | grep -q "$1"; do
        i=$((i + 1)); [ $i -lt 3000 ] || { cat daemon.log; fail "the status never said $1"; }
        sleep 0.02
    done
}
until_status '"health":"healthy"'
husk daemon status --data-dir "$data"

step "the container dies; the supervisor brings it back"
pid=$(husk daemon status --data-dir "$data" --json | sed -n 's/.*"pid":\([0-9]*\).*/\1/p')
[ -n "$pid" ] || fail "no pid in the daemon's status"
kill -9 "$pid"
until_status '"restarts":1'
until_status '"health":"healthy"'
husk daemon status --data-dir "$data"
husk logs --data-dir "$data" --tail 2 web

step "shutdown: the supervisor stops its containers"
kill -TERM $daemon && wait $daemon || fail "husk daemon exited with $?"
husk list
