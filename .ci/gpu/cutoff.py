# For the GPU scripts: each run folder under R (argv[1]) that has a checkpoint but no final model
# R/NAME.pth (cut off by the device's time limit) gets its last checkpoint (the weight average where
# there is one) saved as that final model, with the step it reached in its metadata.
import os, sys

import torch

root = sys.argv[1]
for name in sorted(os.listdir(root)):
    checkpoint, final = os.path.join(root, name, "checkpoint.pth"), os.path.join(root, name + ".pth")
    if not os.path.isfile(checkpoint) or os.path.exists(final):
        continue
    s = torch.load(checkpoint, map_location="cpu", weights_only=True)
    meta = {**s["meta"], "steps": s["step"], "config": s["config"], "note": "checkpoint at the device's time limit"}
    torch.save({"model": {k: v.float().contiguous() for k, v in s.get("averaged", s["model"]).items()}, "meta": meta}, final)
    print("from checkpoint:", final, s["step"])
