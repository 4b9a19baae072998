#!/bin/bash
# One prepared GPU run for issue 14: the shipped style collection and the add-a-style comparison.
# Not part of CI (CI has no GPU). For the device tool of the build machines: it carries the repo
# plus an ignored folder .gpu/ (code/fst: a snapshot of fst/ taken at launch; photos/; styles/ (the
# 11 paintings); vgg16-conv1-4.pth: the VGG file without its unused conv5 layers, to fit the
# 64 MiB transfer limit; .ci/gpu/fullvgg.py zero-fills them).
# Four trainings side by side on the one GPU, 256 px crops, style size 256 (the shipped recipe):
#   c5, c8   all 11 paintings in one collection, --style-weight 5 and 8, batch 16
#   b5       the same without the_scream (10 styles), to add the_scream to on the CPU later
#   s5       the_scream alone, the single-style recipe (2000 steps of 4): the reference
# Run from the repo root: bash .ci/gpu/collection.sh   (DEV=cpu STEPS=5 SIZE=64 to try it here)
set -u
export PYTHONPATH=$PWD/.gpu/code PYTHONUNBUFFERED=1 FST_VGG_WEIGHTS=/tmp/vgg.pth
R=${R:-/tmp/r}; mkdir -p $R
F=${PY:-python3}; DEV=${DEV:-cuda}; STEPS=${STEPS:-5000}; LIMIT=${LIMIT:-420}; SIZE=${SIZE:-256}
finish() {
  for n in c5 c8 b5 s5; do  # a run cut off by the time limit: its last checkpoint as a final model
    [ -f $R/$n.pth ] || $F - $R/$n/checkpoint.pth $R/$n.pth <<'PY'
import sys, torch
s = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
meta = {**s["meta"], "steps": s["step"], "config": s["config"], "note": "checkpoint at the device's time limit"}
torch.save({"model": {k: v.float().contiguous() for k, v in s["model"].items()}, "meta": meta}, sys.argv[2])
print("from checkpoint:", sys.argv[2], s["step"])
PY
  done
  tar czf $OUT/logs.tgz -C $R --exclude='*.pth' --exclude='*.tmp' .
  cp $R/c5.pth $R/c8.pth $R/b5.pth $R/s5.pth $R/summary.txt $OUT/ 2>/dev/null
}
trap finish EXIT
{ nvidia-smi -L; $F -c "import torch; print(torch.__version__, torch.cuda.get_device_name())"; nproc; } 2>&1 | tee $R/summary.txt
$F .ci/gpu/fullvgg.py .gpu/vgg16-conv1-4.pth /tmp/vgg.pth
ALL=$(ls .gpu/styles/*.jpg | sort)
TEN=$(ls .gpu/styles/*.jpg | sort | grep -v the_scream)
args() { for s in $1; do printf -- '--style %s ' $s; done; }
common="--data .gpu/photos --image-size $SIZE --style-size $SIZE --device $DEV --workers 4 --checkpoint-every 500"
run() {  # name, then fst train arguments
  local n=$1; shift
  ( t0=$EPOCHREALTIME; timeout -s INT $LIMIT $F -m fst train $common --run-dir $R/$n --output $R/$n.pth "$@" > $R/$n.log 2>&1
    echo "$n: exit $? after $(awk -v a=$t0 -v b=$EPOCHREALTIME 'BEGIN{printf "%.0f", b-a}') s; $(tail -1 $R/$n/log.jsonl)" | tee -a $R/summary.txt ) &
}
run c5 --collection classics $(args "$ALL") --batch-size 16 --steps $STEPS --style-weight 5
run c8 --collection classics $(args "$ALL") --batch-size 16 --steps $STEPS --style-weight 8
run b5 --collection classics10 $(args "$TEN") --batch-size 16 --steps $((STEPS * 4 / 5)) --style-weight 5
run s5 --style .gpu/styles/the_scream.jpg --batch-size 4 --steps $((STEPS * 2 / 5)) --style-weight 5
sleep 60; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv | tee -a $R/summary.txt; uptime | tee -a $R/summary.txt
wait
