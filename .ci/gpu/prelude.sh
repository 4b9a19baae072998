# Sourced by the GPU scripts after they set R (results folder), F (python) and MODELS ("ARCHIVE:GLOB ...",
# the final models to bring back): on exit, runs cut off by the time limit get their last checkpoint
# as a final model (cutoff.py), then the logs and each archive go to $OUT; before the runs, the
# device's description into R/summary.txt and the full VGG file (fullvgg.py) at /tmp/vgg.pth.
finish() {
  $F .ci/gpu/cutoff.py $R
  tar czf $OUT/logs.tgz -C $R --exclude='*.pth' --exclude='*.tmp' --exclude='*.png' .  # no previews: addstyle.sh's archive was over 16 MB
  for m in $MODELS; do (cd $R && tar czf $OUT/${m%%:*}.tgz ${m#*:}) 2>&1; done
  cp $R/summary.txt $OUT/
}
trap finish EXIT
{ nvidia-smi -L; $F -c "import torch; print(torch.__version__, torch.cuda.get_device_name())"; nproc; } 2>&1 | tee $R/summary.txt
$F .ci/gpu/fullvgg.py .gpu/vgg16-conv1-4.pth /tmp/vgg.pth
