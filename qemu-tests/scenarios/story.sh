# timeout: 180
# The device story, as the README's first command shows it. Today: the device
# boots, husk is there, and it runs a container from an OCI bundle. Later issues
# grow this into the whole update story (install, update by delta, roll back).
. /lab/lib.sh

step "the device"
echo "kernel $(uname -r) on $(uname -m); $(husk --version)"

step "run a container"
make_bundle hello hello-device \
    '["/bin/sh", "-c", "echo \"hello from $(hostname), running as PID $$ in its own namespaces\"; ls /"]'
husk run --bundle hello hello || fail "husk run exited with $?"
