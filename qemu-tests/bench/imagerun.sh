# timeout: 1500
# Benchmark (not a test): images and the supervisor, in this guest.
# - import time of a 3-layer image (busybox, 4 MiB of random data, a small
#   change) and its disk use next to the sum of its layers;
# - `husk run --image` of `echo` (cold start to its one output line, and the
#   end), RUNS runs, next to `crun run` of the same root filesystem where the
#   lab put crun in the guest (x86_64), interleaved;
# - idle RSS of `husk daemon` supervising 10 containers (goal: under 2 MiB).
. /lab/lib.sh
RUNS=20
data=$PWD/data
H() { husk --data-dir "$data" "$@"; }
case $(uname -m) in
    x86_64) arch=amd64 ;;
    aarch64) arch=arm64 ;;
    armv7l | armv8l) arch=arm ;;
    *) arch=$(uname -m) ;;
esac
ms() { awk '{printf "%d", $1 * 1000}' /proc/uptime; }

step "a 3-layer image: import time and disk use"
mkdir -p l2/data l3/etc && head -c 4194304 /dev/urandom > l2/data/blob && echo "bench" > l3/etc/motd
tar -C /lab/rootfs -cf layer1.tar . && tar -C l2 -cf layer2.tar . && tar -C l3 -cf layer3.tar . \
    || fail "cannot make the layers"
mkdir -p saved
ids=""
for n in 1 2 3; do
    mkdir -p saved/l$n && cp layer$n.tar saved/l$n/layer.tar
    ids="$ids${ids:+,}\"sha256:$(sha256sum layer$n.tar | cut -d' ' -f1)\""
done
printf '{"architecture":"%s","os":"linux","config":{"Cmd":["echo","hi"],"Env":["PATH=/bin"]},"rootfs":{"type":"layers","diff_ids":[%s]}}' \
    "$arch" "$ids" > saved/config.json
cfg=$(sha256sum saved/config.json | cut -d' ' -f1) && mv saved/config.json "saved/$cfg.json"
printf '[{"Config":"%s.json","RepoTags":["bench:1"],"Layers":["l1/layer.tar","l2/layer.tar","l3/layer.tar"]}]' \
    "$cfg" > saved/manifest.json
tar -C saved -cf image.tar manifest.json "$cfg.json" l1 l2 l3 || fail "cannot write image.tar"
start=$(ms)
H image import image.tar || fail "husk image import exited with $?"
took=$(( $(ms) - start ))
layers_kib=$(( ($(wc -c < layer1.tar) + $(wc -c < layer2.tar) + $(wc -c < layer3.tar)) / 1024 ))
stored_kib=$(du -sk "$data/layers" | cut -f1)
echo "RESULT import of a 3-layer image ($(( $(wc -c < image.tar) / 1024 )) KiB): $took ms"
echo "RESULT disk: layers stored $stored_kib KiB, sum of the layer tars $layers_kib KiB"
start=$(ms)
H image import --name bench:2 image.tar > /dev/null || fail "the second import failed"
echo "RESULT import of the same image again (layers stored already): $(( $(ms) - start )) ms"

step "cold start: husk run --image vs crun run of the same root, $RUNS runs each"
make_bundle cb cb '["/bin/echo", "hi"]'
if command -v crun > /dev/null; then
    husk-bench latency $RUNS \
        "crun=crun run --bundle $PWD/cb c{i}" \
        "husk=husk --data-dir $data run --image bench:1 h{i}" \
        -- baseline /lab/rootfs/bin/echo hi || fail "husk-bench latency failed"
else
    echo "(no crun in this guest: the lab adds it on x86_64 only)"
    husk-bench latency $RUNS "husk=husk --data-dir $data run --image bench:1 h{i}" \
        -- baseline /lab/rootfs/bin/echo hi || fail "husk-bench latency failed"
fi

step "idle RSS of husk daemon supervising 10 containers"
{
    printf '{"containers": ['
    for n in 0 1 2 3 4 5 6 7 8 9; do
        [ $n -gt 0 ] && printf ','
        printf '{"name": "idle%s", "image": "bench:1", "args": ["sleep", "100000"]}' $n
    done
    printf ']}\n'
} > "$data/desired.json"
husk daemon --data-dir "$data" 2> daemon.log &
daemon=$!
i=0
until [ "$(H daemon status --json | grep -o '"state":"running"' | wc -l)" -eq 10 ]; do
    i=$((i + 1)); [ $i -lt 3000 ] || { cat daemon.log; fail "10 containers did not come up"; }
    sleep 0.05
done
sleep 3
rss=$(sed -n 's/^VmRSS:[[:space:]]*//p' /proc/$daemon/status)
hwm=$(sed -n 's/^VmHWM:[[:space:]]*//p' /proc/$daemon/status)
echo "RESULT husk daemon, 10 containers running, idle: VmRSS $rss (peak $hwm); goal under 2048 kB"
kill -TERM $daemon && wait $daemon
