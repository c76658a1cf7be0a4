# timeout: 60
. /lab/lib.sh
skip "skipping on purpose"
