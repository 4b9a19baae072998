#!/bin/bash
# One prepared GPU check for fst: CUDA paths (train, resume, optimize, stylize, bench) and the
# width-16 vs width-32 comparison on trained models. Results go to $OUT/results.tgz.
# Not part of CI (CI has no GPU). For the device tool of the build machines: it carries the repo
# plus an ignored folder .gpu/ (photos/, styles/starry_night.jpg, vgg16-conv1-4.pth: the VGG file
# without its unused conv5 layers, to fit the 64 MiB transfer limit; fullvgg.py zero-fills them).
# Run from the repo root: bash .ci/gpu/check.sh   (DEV=cpu STEPS=3 ITERS=5 EVERY=60 BENCH=0 to try it here)
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 FST_VGG_WEIGHTS=/tmp/vgg.pth
R=${R:-/tmp/r}; export R; mkdir -p $R
# $OUT takes 8 files of at most 16 MB: the models one by one, the rest (no checkpoints) in one archive.
finish() { tar czf $OUT/results.tgz -C $(dirname $R) --exclude=checkpoint.pth --exclude='preview_0*' --exclude='*.onnx' --exclude='*.pth' $(basename $R)
           cp $R/summary.txt $R/sn_*.pth $OUT/ 2>/dev/null; }
trap finish EXIT
S() { echo "== $(date +%T) $*" | tee -a $R/summary.txt; }
F=${PY:-python3}; DEV=${DEV:-cuda}; STEPS=${STEPS:-1600}; ITERS=${ITERS:-300}; EVERY=${EVERY:-4}; BENCH=${BENCH:-1}
T() { local name=$1 t0=$EPOCHREALTIME; shift; "$@"; local rc=$?; awk -v a=$t0 -v b=$EPOCHREALTIME -v n="$name" -v rc=$rc 'BEGIN{printf "%s: %.2f s (exit %d)\n", n, b-a, rc}' | tee -a $R/summary.txt; return $rc; }
S env; { nvidia-smi -L; $F -c "import torch, onnxruntime as o, torchvision; print(torch.__version__, torchvision.__version__, torch.cuda.get_device_name(), o.__version__, o.get_available_providers())"; nproc; } 2>&1 | tee -a $R/summary.txt
$F .ci/gpu/fullvgg.py .gpu/vgg16-conv1-4.pth /tmp/vgg.pth
mkdir -p /tmp/eval && cp $(find .gpu/photos -type f | sort | awk -v e=$EVERY 'NR%e==0') /tmp/eval/
$F -c "from PIL import Image; Image.open('/tmp/eval/'+__import__('os').listdir('/tmp/eval')[0]).convert('RGB').resize((1024,1024)).save('/tmp/p1024.jpg', quality=92)"

S "train: 4 runs side by side on the GPU (width 16/32 x crops 128/256), 1600 steps, batch 4"
for c in 16 32; do for s in 128 256; do
  n=sn_c${c}_s${s}
  ( T "$n" timeout -s INT 250 $F -m fst train --style .gpu/styles/starry_night.jpg --data .gpu/photos \
    --steps $STEPS --image-size $s --style-size 256 --channels $c --device $DEV --workers 3 --checkpoint-every 400 \
    --name starry_night --run-dir $R/$n --output $R/$n.pth > $R/train_$n.log 2>&1 ) &
done; done
wait
for f in $R/sn_*/log.jsonl; do echo "$f $(tail -1 $f)"; done | tee -a $R/summary.txt

S "train resume on cuda: 20 steps, then --resume to 40"
timeout 120 $F -m fst train --style .gpu/styles/starry_night.jpg --data .gpu/photos --steps 20 --image-size 128 --device $DEV \
  --workers 2 --checkpoint-every 10 --run-dir $R/res --output $R/res20.pth > $R/resume.log 2>&1; echo "exit $?" >> $R/summary.txt
timeout 120 $F -m fst train --resume $R/res/checkpoint.pth --steps 40 --output $R/res40.pth >> $R/resume.log 2>&1; echo "resume exit $?" >> $R/summary.txt
tail -c 600 $R/resume.log | tr '\r' '\n' | tail -4 >> $R/summary.txt

S "optimize on cuda 256 and 512"
for s in 256 512; do
  T "optimize $s" timeout 120 $F -m fst optimize .gpu/photos/categorization/images_monuments_monument3.jpg \
    --style .gpu/styles/starry_night.jpg -o $R/opt$s.png --image-size $s --iterations $ITERS --device $DEV --json 2> $R/opt$s.err | tee $R/opt$s.json | tail -c 300 >> $R/summary.txt

done

S "evaluate (CPU of the device, same VGG): held-out 4 and every 4th photo, 256 and 512"
for m in $R/sn_*.pth; do for s in 256 512; do
  OMP_NUM_THREADS=1 timeout 200 $F -m fst evaluate $m --photos .gpu/photos --held-out --size $s --style .gpu/styles/starry_night.jpg --json > $m.held$s.json 2>>$R/eval.err &
done; OMP_NUM_THREADS=1 timeout 200 $F -m fst evaluate $m --photos /tmp/eval --size 256 --style .gpu/styles/starry_night.jpg --json > $m.all256.json 2>>$R/eval.err &
done; wait
$F - <<'PY' | tee -a $R/summary.txt
import glob, json, os; R=os.environ['R']
for f in sorted(glob.glob(R+'/sn_*.pth.*.json')):
    try: r = json.load(open(f))[0]
    except Exception as e: print(f, 'failed', e); continue
    print(f"{f.split('/')[-1]:<32} n={len(r['photos']):3d} style ratio mean {r['mean_style_ratio']:.3f} max {r['max_style_ratio']:.3f} content {r['mean_content']:.3f}")
PY

S "stylize 1024^2 --backend torch --device $DEV (x3), export + ORT CPU"
for i in 1 2 3; do T "stylize 1024 torch $DEV whole command" $F -m fst stylize /tmp/p1024.jpg -m $R/sn_c16_s128.pth --backend torch --device $DEV -o $R/st_cuda.jpg --overwrite > /dev/null 2>&1; done
for i in 1 2 3; do T "stylize 1024 onnx (ORT) whole command" $F -m fst stylize /tmp/p1024.jpg -o $R/st_ort.jpg --overwrite > /dev/null 2>&1; done
timeout 120 $F -m fst export $R/sn_c32_s128.pth -o $R/c32.onnx 2>&1 | tail -5 >> $R/summary.txt

S "bench on cuda"
[ $BENCH = 1 ] && [ $SECONDS -lt 430 ] && timeout $((555-SECONDS)) $F -m fst bench --device $DEV --vgg-weights /tmp/vgg.pth > $R/bench.txt 2>&1; echo "bench exit $?" >> $R/summary.txt
cat $R/bench.txt >> $R/summary.txt
S done
