# timeout: 1500
# Benchmark (not a test): container start latency and husk's memory, measured
# side by side in this guest by husk-bench.
# - create+start+wait+delete of /bin/true from a busybox bundle (`run`), for
#   husk and, where the lab put them in the guest (x86_64: --host-tool), crun and
#   runc: RUNS runs each, interleaved; medians, and ratios to the first runtime
#   (crun when present) and to a bare fork+exec of /bin/true;
# - peak RSS of `husk run`;
# - a container under a 512 KiB memory limit (crun's demonstrated floor).
. /lab/lib.sh
RUNS=30

make_bundle b bench '["/bin/true"]'
bundle=$PWD/b

step "start latency: run /bin/true, $RUNS runs each, interleaved"
if command -v crun > /dev/null && command -v runc > /dev/null; then
    husk-bench latency $RUNS \
        "crun=crun run --bundle $bundle c{i}" \
        "husk=husk run --bundle $bundle h{i}" \
        "runc=runc run --bundle $bundle r{i}" \
        -- baseline /lab/rootfs/bin/true || fail "husk-bench latency failed"
else
    echo "(no crun and runc in this guest: the lab adds them on x86_64 only)"
    husk-bench latency $RUNS "husk=husk run --bundle $bundle h{i}" \
        -- baseline /lab/rootfs/bin/true || fail "husk-bench latency failed"
fi
# The device program every run attached: pinned once, by the first run.
echo "pinned device programs: $(find /sys/fs/bpf/husk -type f 2>&1 | tr '\n' ' ')"

step "peak RSS of husk run"
husk-bench rss husk run --bundle "$bundle" rss || fail "husk-bench rss failed"
if command -v crun > /dev/null; then
    husk-bench rss crun run --bundle "$bundle" rss-crun || fail "husk-bench rss (crun) failed"
fi

step "a container under a 512 KiB memory limit"
make_bundle small small '["/bin/true"]' '"resources": {"memory": {"limit": 524288, "swap": 524288}}'
if husk run --bundle small small; then
    echo "RESULT husk ran /bin/true under memory.max = 512 KiB"
else
    fail "husk could not run /bin/true under memory.max = 512 KiB (exit $?)"
fi
if command -v crun > /dev/null; then
    if crun run --bundle small small-crun; then
        echo "RESULT crun ran /bin/true under memory.max = 512 KiB"
    else
        echo "RESULT crun failed under memory.max = 512 KiB (exit $?)"
    fi
fi
