#!/usr/bin/env bash
# One-shot GPU run (docs/generation.md): train + evaluate the shipped 64 px checkpoint on the motifs set,
# then run benchmarks/generation.py on CUDA. Results go to $OUT (run.tgz, bench.json, log.txt).
# Runs from the repository root on a machine with torch but without culturelab installed:
# the generation/ folder is mapped to culturelab.generation through a namespace folder on PYTHONPATH.
# A dry run on CPU: SMOKE=1 OUT=/tmp/gpu_out bash benchmarks/gpu_check.sh
set -uo pipefail
OUT=${OUT:?set OUT}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1

ns=$(mktemp -d)
mkdir -p "$ns/culturelab"
ln -s "$PWD/generation" "$ns/culturelab/generation"
export PYTHONPATH="$ns${PYTHONPATH:+:$PYTHONPATH}"
RUN=$(mktemp -d)/motifs-cgan-64

if [ "${SMOKE:-0}" = 1 ]; then
  DEVICE=cpu; STEPS=4; MINUTES=1; PER=20; EVAL=10; BENCH="--train-steps 2 --sample-images 64 --set-per-culture 5"
else
  DEVICE=cuda; STEPS=30000; MINUTES=3.2; PER=1000; EVAL=500; BENCH=""
fi

python3 - <<'EOF'
import torch, torchvision, safetensors, scipy, PIL, click, tqdm
print("torch", torch.__version__, "torchvision", torchvision.__version__, "safetensors", safetensors.__version__,
      "cuda", torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "")
EOF

# 1. Train the 64 px checkpoint (fp32/TF32; stops at --max-minutes, the log says at which step).
python3 -m culturelab.generation.train --data motifs --resolution 64 --per-culture "$PER" --steps "$STEPS" \
  --batch-size 128 --g-channels 24 --d-channels 32 --max-minutes "$MINUTES" --device "$DEVICE" \
  --log-every 100 --sample-every 2000 --checkpoint-every 100000 --out "$RUN"
echo "train exit $?"
tail -n 3 "$RUN/metrics.jsonl"

# 2. Evaluate it the way `culturelab generate evaluate` does (500 generated + 500 real per culture).
timeout 120 python3 - "$RUN/generator.safetensors" "$EVAL" "$DEVICE" <<'EOF'
import json, sys
from pathlib import Path
from culturelab.generation.evaluate import evaluate
path, n, device = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
results = evaluate(path, "motifs", per_culture=n, device=device)
path.with_name(path.stem + ".evaluation.json").write_text(json.dumps(results, indent=2) + "\n")
print(json.dumps(results["summary"]), "classifier val acc", results["classifier"]["val_accuracy"])
EOF
echo "evaluate exit $?"
rm -f "$RUN/checkpoint.safetensors"
tar czf "$OUT/run.tgz" -C "$(dirname "$RUN")" "$(basename "$RUN")"

# 3. Speed on CUDA, with the checkpoint just trained for the set-writing time: eager first, then with
# torch.compile for sampling (compilation can be slow, so it runs last and on its own).
timeout 60 python3 benchmarks/generation.py --device "$DEVICE" --checkpoint "$RUN/generator.safetensors" \
  --no-compile $BENCH | tee "$OUT/bench.json"
echo "bench exit $?"
timeout 100 python3 benchmarks/generation.py --device "$DEVICE" --checkpoint "$RUN/generator.safetensors" \
  --compile $BENCH | tee "$OUT/bench_compiled.json"
echo "bench compiled exit $?"
