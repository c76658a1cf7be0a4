# timeout: 60
. /lab/lib.sh
step "a scenario that passes"
expect_eq "one" 1 1
