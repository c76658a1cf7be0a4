# timeout: 300
# Images on the device: a `docker save` archive made here from the lab's
# busybox root is imported (its blobs checked), run with `husk run --image`
# on an overlay root, refused when a layer's bytes do not match its digest
# (the store unchanged), run and restarted by `husk daemon` from an image
# entry, and pruned once no image or container uses it.
. /lab/lib.sh

data=$PWD/data
H() { husk --data-dir "$data" "$@"; }
case $(uname -m) in
    x86_64) arch=amd64 ;;
    aarch64) arch=arm64 ;;
    armv7l | armv8l) arch=arm ;;
    *) arch=$(uname -m) ;;
esac

# save NAME LAYER_TAR DIFF_ID OUT: a docker save archive of one layer.
save() {
    rm -rf saved && mkdir -p saved/l1 || fail "cannot make saved/"
    cp "$2" saved/l1/layer.tar
    printf '{"architecture":"%s","os":"linux","config":{"Cmd":["sh","-c","echo hello from $GREETING"],"Env":["PATH=/bin","GREETING=image"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
        "$arch" "$3" > saved/config.json
    cfg=$(sha256sum saved/config.json | cut -d' ' -f1)
    mv saved/config.json "saved/$cfg.json"
    printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["l1/layer.tar"]}]' "$cfg" "$1" > saved/manifest.json
    tar -C saved -cf "$4" manifest.json "$cfg.json" l1 || fail "cannot write $4"
}

step "a docker save archive made on the device imports, each blob checked"
tar -C /lab/rootfs -cf layer.tar . || fail "cannot tar the lab rootfs"
diff=$(sha256sum layer.tar | cut -d' ' -f1)
save lab:1 layer.tar "$diff" lab.tar
H image import lab.tar || fail "husk image import exited with $?"
H image ls > ls.txt; cat ls.txt
grep -q "^lab:1 " ls.txt || fail "lab:1 is not listed"
expect_eq "layers stored" "$(ls "$data/layers/sha256" | wc -l)" 1

step "husk run --image runs the image's command on an overlay root"
expect_eq "output" "$(H run --image lab:1 c1)" "hello from image"
expect_eq "output with -e" "$(H run --image lab:1 -e GREETING=device c1)" "hello from device"
H run --image lab:1 c1 sh -c 'echo x > /written' || fail "writing the root failed"
expect_eq "a write of one run, seen by the next" \
    "$(H run --image lab:1 c1 sh -c '[ -e /written ] && echo kept || echo gone')" "gone"
grep -q "$data/containers" /proc/mounts && fail "an overlay is still mounted"
echo "ok: no overlay left mounted"

step "husk run --image with limits, volumes and the host's network"
mkdir -p vol && echo from-host > vol/file
expect_eq "a read-only volume" \
    "$(H run --image lab:1 -v "$PWD/vol:/vol:ro" c1 sh -c 'cat /vol/file; touch /vol/x 2>&1 | grep -c Read-only')" \
    "from-host
1"
H run --image lab:1 -v "$PWD/vol:/vol" c1 sh -c 'echo written > /vol/new' || fail "writing a volume failed"
expect_eq "a write through a read-write volume" "$(cat vol/new)" written
H run --image lab:1 --memory 16m c1 sh -c 'a=xxxxxxxxxxxxxxxx; while true; do a=$a$a; done'
expect_eq "a hog under --memory 16m: killed by SIGKILL (128+9)" "$?" 137
H run --image lab:1 --pids-limit 5 c1 sh -c 'for i in 1 2 3 4 5 6 7 8; do sleep 5 & done' > out.txt 2>&1
grep -q "can't fork" out.txt || fail "8 processes started under --pids-limit 5: $(cat out.txt)"
echo "ok: forks stop at --pids-limit"
expect_eq "--net host: the host's network namespace" \
    "$(H run --image lab:1 --net host c1 readlink /proc/self/ns/net)" "$(readlink /proc/self/ns/net)"
expect_ne "default: a network namespace of its own" \
    "$(H run --image lab:1 c1 readlink /proc/self/ns/net)" "$(readlink /proc/self/ns/net)"

step "a layer whose bytes are not its digest is refused; the store is unchanged"
# Into a second store: the first holds that diff_id already, and would use its
# own checked copy rather than read the archive's.
other=$PWD/other
husk --data-dir "$other" image import lab.tar > /dev/null || fail "importing into $other failed"
husk --data-dir "$other" image rm lab:1 > /dev/null && husk --data-dir "$other" image prune > /dev/null
cp layer.tar bad.tar && echo tampered >> bad.tar
save bad:1 bad.tar "$diff" bad-image.tar
before=$(find "$other" | sort | md5sum)
husk --data-dir "$other" image import bad-image.tar > out.txt 2>&1 && fail "a tampered layer was imported"
cat out.txt
grep -q "sha256" out.txt || fail "the error does not name the digest"
expect_eq "the store after the refused import" "$(find "$other" | sort | md5sum)" "$before"

step "husk daemon runs an image entry and restarts it"
cat > "$data/desired.json" <<JSON
{"containers": [
  {"name": "imaged", "image": "lab:1", "args": ["sh", "-c", "echo up; sleep 1; exit 1"],
   "restart": "on-failure:2", "backoff": {"initial": "500ms", "max": "1s"}}
]}
JSON
husk daemon --data-dir "$data" 2> daemon.log &
daemon=$!
i=0
until H daemon status --json | grep -q '"state":"given-up"'; do
    i=$((i + 1)); [ $i -lt 1500 ] || { cat daemon.log; fail "imaged was not given up"; }
    sleep 0.02
done
H daemon status
expect_eq "runs logged" "$(H logs imaged | grep -c '^up$')" 3
kill -TERM $daemon; wait $daemon
expect_eq "daemon exit status" "$?" 0
grep -q "$data/containers" /proc/mounts && fail "the daemon left an overlay mounted"
echo "ok: no overlay left mounted"

step "prune keeps what an image uses, frees it after rm"
H image prune; expect_eq "layers after a prune" "$(ls "$data/layers/sha256" | wc -l)" 1
H image rm lab:1 || fail "husk image rm exited with $?"
H image prune || fail "husk image prune exited with $?"
expect_eq "layers after rm and prune" "$(ls "$data/layers/sha256" | wc -l)" 0
