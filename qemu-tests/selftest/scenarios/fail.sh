# timeout: 60
. /lab/lib.sh
step "a scenario that fails on purpose"
fail "failing on purpose"
