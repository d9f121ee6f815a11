#!/usr/bin/env bash
# Instructions per call of one benchmark case, counted by valgrind's cachegrind: a measure that
# does not swing with a noisy machine (where alternating timed runs differ by up to 2x), for
# comparing two builds' compute (it does not see memory stalls: time them too).
#
#   bench/instructions.sh BINARY ID SIZE MODE [DTYPE]
#   bench/instructions.sh target/release/losskit cross_entropy@ 8192x32 fwd_bwd_into f32
#
# ID as `losskit bench --ids` takes it (`cross_entropy@` is plain cross_entropy alone, without
# its variants). The count is the difference between runs of 12 and 2 timed calls, over 10: the
# set-up (inputs, warm-up) cancels out. One thread. About a minute for a few million elements.
set -euo pipefail
if [ $# -lt 4 ]; then sed -n 2,12p "$0"; exit 2; fi
bin=$1 id=$2 size=$3 mode=$4 dtype=${5:-f32}
count() {
    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "$bin" bench \
        --ids "$id" --sizes "$size" --dtypes "$dtype" --modes "$mode" --threads 1 \
        --time 0.000001 --min-reps "$1" 2>&1 | grep "I *refs" | tr -d , | awk '{print $NF}'
}
few=$(count 2)
many=$(count 12)
echo "$id $size $mode $dtype: $(( (many - few) / 10 )) instructions per call"
