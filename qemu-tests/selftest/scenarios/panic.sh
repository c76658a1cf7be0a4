# timeout: 60
. /lab/lib.sh
step "a scenario that panics the kernel on purpose"
echo 1 > /proc/sys/kernel/sysrq
echo c > /proc/sysrq-trigger
sleep 60
