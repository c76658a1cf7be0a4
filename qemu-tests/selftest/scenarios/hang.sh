# timeout: 10
. /lab/lib.sh
step "a scenario that hangs on purpose"
sleep 100000
