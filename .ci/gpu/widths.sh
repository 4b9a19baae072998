#!/bin/bash
# One prepared GPU run for issues 12 and 14 (not part of CI: CI has no GPU). For the device tool of
# the build machines: it carries the repo plus the ignored folder .gpu/ (photos/; styles/ (the 11
# paintings); vgg16-conv1-4.pth: the VGG file without its unused conv5 layers; .ci/gpu/fullvgg.py
# zero-fills them). The 64 MiB transfer limit: move export/ out of the tree for the call. Everything side by side on the one GPU,
# 256 px crops, style size 256 (the shipped recipe):
#   issue 12, the cheaper network trained to the end: the shipped single-style recipe (1600 steps
#     of 4 here, 2000 shipped; fresh weights) at widths 16, 12 and 8 (5 blocks) and 16 with 3 blocks, for great_wave
#     (style weight 8, whole painting, as shipped) and starry_night (5, 2 % margin, as shipped)
#   issue 14, the collection with a style weight per style: the shipped classics trained further
#     (all weights, batch 16) with lower weights for the four paintings that have a single network,
#     three settings (the others stay at 8)
# It ran as two calls (the collections failed at first): LIMIT=390, then ONLY=collections LIMIT=330.
# Run from the repo root: bash .ci/gpu/widths.sh   (DEV=cpu STEPS=3 SIZE=64 LIMIT=60 to try it here)
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 FST_VGG_WEIGHTS=/tmp/vgg.pth
R=${R:-/tmp/r}; mkdir -p $R
F=${PY:-python3}; DEV=${DEV:-cuda}; STEPS=${STEPS:-1600}; LIMIT=${LIMIT:-390}; SIZE=${SIZE:-256}
MODELS="singles:w*.pth collections:c*.pth"
. .ci/gpu/prelude.sh
S=.gpu/styles
common="--data .gpu/photos --image-size $SIZE --style-size $SIZE --device $DEV --checkpoint-every 500 --time-limit $LIMIT"
run() {  # name, then fst train arguments
  local n=$1; shift
  ( t0=$EPOCHREALTIME; timeout -s INT $((LIMIT + 90)) $F -m fst train $common --run-dir $R/$n --output $R/$n.pth "$@" > $R/$n.log 2>&1
    echo "$n: exit $? after $(awk -v a=$t0 -v b=$EPOCHREALTIME 'BEGIN{printf "%.0f", b-a}') s; $(tail -1 $R/$n/log.jsonl)" | tee -a $R/summary.txt ) &
}
[ "${ONLY:-}" = collections ] || for w in "16 5" "12 5" "8 5" "16 3"; do set -- $w
  run w$1b$2_great_wave --style $S/great_wave.jpg --style-weight 8 --style-margin 0 --channels $1 --res-blocks $2 --init none --steps $STEPS --workers 2
  [ "$w" = "16 3" ] || run w$1b$2_starry_night --style $S/starry_night.jpg --style-weight 5 --channels $1 --res-blocks $2 --init none --steps $STEPS --workers 2
done
# the shipped collection's styles in its own order (train refuses another)
ALL=$($F -c "import torch; print(' '.join('--style $S/%s.jpg' % n for n in torch.load('checkpoints/classics.pth', weights_only=True)['meta']['style_names']))")
for v in "cA 4.5 5.5 6.5 7" "cB 3.6 4.8 5.4 6.1" "cC 3 4 4.5 5"; do set -- $v
  run $1 --collection classics $ALL --init checkpoints/classics.pth --batch-size 16 --steps $((STEPS * 2)) --workers 3 \
    --style-weight 8 --style-weight-of starry_night=$2,the_night_cafe=$3,composition_viii=$4,great_wave=$5
done
sleep 90; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv | tee -a $R/summary.txt; uptime | tee -a $R/summary.txt
wait
