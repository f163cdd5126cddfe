#!/usr/bin/env bash
# The generation speed benchmark on a lent GPU (docs/generation.md, "Speed"): benchmarks/generation.py on
# CUDA, eager and then with torch.compile, with the shipped checkpoint, then benchmarks/style_transfer.py.
# Writes bench-eager.json, bench-compile.json, bench-style-transfer(-bf16, -bf16-autotuned).json and log.txt
# to $OUT. Short on purpose: a device session's time is scarce.
# Runs from the repository root on a machine with torch but without culturelab installed: the
# generation/ folder is mapped to culturelab.generation through a namespace folder on PYTHONPATH.
#   OUT=$OUT bash benchmarks/gpu_check.sh            (DEVICE=cpu for a dry run here)
set -uo pipefail
OUT=${OUT:?set OUT}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1

source benchmarks/generation_path.sh

python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu')"
timeout 200 python3 benchmarks/generation.py --device "$DEVICE" --no-compile | tee "$OUT/bench-eager.json"
echo "eager exit $?"
timeout 200 python3 benchmarks/generation.py --device "$DEVICE" | tee "$OUT/bench-compile.json"
echo "compile exit $?"
# Style transfer (docs/generation.md, "Style transfer"): 300 L-BFGS evaluations at 512 px, unbatched and
# in batches of 8, the bare-VGG19 comparison and translation images/s.
timeout 240 python3 benchmarks/style_transfer.py --device "$DEVICE" | tee "$OUT/bench-style-transfer.json"
echo "style transfer exit $?"
# The same two timings with the VGG19 passes in bf16 (issue 10's GPU targets; losses and L-BFGS stay fp32).
timeout 120 python3 benchmarks/style_transfer.py --device "$DEVICE" --precision bf16 --skip vs_bare_vgg lbfgs_step translation \
    | tee "$OUT/bench-style-transfer-bf16.json"
echo "style transfer bf16 exit $?"
# And with cuDNN's autotuned (not bit-reproducible) kernels: whether a "fast, not repeatable" option would pay.
timeout 120 python3 benchmarks/style_transfer.py --device "$DEVICE" --precision bf16 --cudnn-benchmark \
    --skip vs_bare_vgg lbfgs_step translation | tee "$OUT/bench-style-transfer-bf16-autotuned.json"
echo "style transfer bf16 autotuned exit $?"
