#!/bin/bash
# One prepared GPU run for issue 14's add-a-style target: does a base collection trained on more
# variety take a new painting in fewer steps? (Not part of CI: CI has no GPU.) For the device tool
# of the build machines: it carries the repo (export/ moved out of the tree for the call: the
# 64 MiB transfer limit) plus the ignored folder .gpu/: photos/; styles/ (the 11 paintings); aug/
# (pseudo-styles made from the 10 paintings other than The Scream: each one's four quadrants,
# NAME_q0..3, strokes at twice the scale, and the whole painting with its hue turned by 90, 180
# and 270 degrees, NAME_h0..2); vgg16-conv1-4.pth (.ci/gpu/fullvgg.py zero-fills conv5).
# All side by side on the one GPU, 256 px crops, style size 256 (the recipe of classics10.pth):
#   phase 1, base collections, batch 16, style weight 5, fresh weights, the same time limit each:
#     b10  the 10 paintings (the control: classics10's recipe, fewer steps)
#     bq   the 10 paintings + their 40 quadrants (50 styles)
#     bqh  the 10 paintings + quadrants + hue-turned (80 styles)
#   and, meanwhile, The Scream added to checkpoints/reference/classics10.pth (the CPU's recipe:
#     --lr 0.05 --style-weight 7, batch 4; a7) and at style weight 9 (a9): steps against the CPU's
#   phase 2: The Scream added to each phase-1 base by the same recipe (a7_b10, a7_bq, a7_bqh).
# ONLY=further (the session's second call, in the minutes left): classics10 trained further, all
# weights, for 150 s (k), The Scream added to it at style weight 7 and 8 (k7, k8, 45 s each), and
# meanwhile added to classics10 with batch 2 (b2) and with 192 px crops (c192), 140 s each.
# Held-out figures (the 4 photos at their own size) go to each run's log.jsonl every EVAL seconds.
# Run from the repo root: bash .ci/gpu/addstyle.sh   (DEV=cpu BASE=20 ADD=20 SIZE=64 EVAL=10 to try it here)
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 FST_VGG_WEIGHTS=/tmp/vgg.pth
R=${R:-/tmp/r}; mkdir -p $R
F=${PY:-python3}; DEV=${DEV:-cuda}; BASE=${BASE:-250}; ADD=${ADD:-100}; SIZE=${SIZE:-256}; EVAL=${EVAL:-6}
MODELS="bases:b*.pth added:a*.pth"
. .ci/gpu/prelude.sh
S=.gpu/styles; A=.gpu/aug
common="--data .gpu/photos --image-size $SIZE --style-size $SIZE --device $DEV --checkpoint-every 500"
run() {  # name, then fst train arguments
  local n=$1; shift
  ( t0=$EPOCHREALTIME; $F -m fst train $common --run-dir $R/$n --output $R/$n.pth "$@" > $R/$n.log 2>&1
    echo "$n: exit $? after $(awk -v a=$t0 -v b=$EPOCHREALTIME 'BEGIN{printf "%.0f", b-a}') s; $(tail -1 $R/$n/log.jsonl)" | tee -a $R/summary.txt ) &
}
ten() { for p in $(ls $S/*.jpg | sort | grep -v the_scream); do printf -- '--style %s ' $p; done; }
each() { for p in $(ls $A/*_$1[0-9].jpg | sort); do printf -- '--style %s ' $p; done; }
if [ "${ONLY:-}" = further ]; then
  K=checkpoints/reference/classics10.pth
  ALL=$($F -c "import torch; print(' '.join('--style $S/%s.jpg' % n for n in torch.load('$K', weights_only=True)['meta']['style_names']))")
  add="--add-style $S/the_scream.jpg --lr 0.05 --workers 2 --steps 100000 --eval-every $EVAL --checkpoint-every 0"
  run k --collection classics10 $ALL --init $K --batch-size 16 --style-weight 5 --workers 4 --steps 100000 --time-limit $((BASE * 3 / 5))
  run b2 --init $K --style-weight 7 --batch-size 2 $add --time-limit $((ADD * 7 / 5))
  run c192 --init $K --style-weight 7 --batch-size 4 --image-size $((SIZE * 3 / 4)) $add --time-limit $((ADD * 7 / 5))
  wait
  for w in 7 8; do run k$w --init $R/k.pth --style-weight $w --batch-size 4 $add --time-limit $((ADD * 9 / 20)); done
  wait; exit
fi
base="--batch-size 16 --style-weight 5 --init none --workers 3 --steps 100000 --time-limit $BASE"
add="--add-style $S/the_scream.jpg --lr 0.05 --batch-size 4 --workers 2 --steps 100000 --time-limit $ADD --eval-every $EVAL"
run b10 --collection b10 $(ten) $base
run bq --collection bq $(ten) $(each q) $base
run bqh --collection bqh $(ten) $(each q) $(each h) $base
run a7 --init checkpoints/reference/classics10.pth --style-weight 7 $add
run a9 --init checkpoints/reference/classics10.pth --style-weight 9 $add
sleep 60; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv | tee -a $R/summary.txt; uptime | tee -a $R/summary.txt
wait
echo "== phase 2 $(date +%T)" | tee -a $R/summary.txt
for b in b10 bq bqh; do [ -f $R/$b.pth ] && run a7_$b --init $R/$b.pth --style-weight 7 $add; done
wait
echo "== done $(date +%T)" | tee -a $R/summary.txt
