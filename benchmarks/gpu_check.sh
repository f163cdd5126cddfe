#!/usr/bin/env bash
# One-shot GPU run (docs/generation.md): train three optimiser variants of the 64 px motifs cGAN side by
# side on one GPU (each process is launch-bound, so they share it well), evaluate each one's EMA and raw
# generator the way `culturelab generate evaluate` does, then run benchmarks/generation.py on CUDA.
# Results go to $OUT: run-A.tgz, run-B.tgz, run-C.tgz, summary.json, bench.json, log.txt.
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
RUNS=$(mktemp -d)

if [ "${SMOKE:-0}" = 1 ]; then
  DEVICE=cpu; STEPS=2; MINUTES=1; PER=8; EVAL=10; BATCH=8; RES=32
  BENCH="--resolution 32 --train-steps 1 --sample-images 16 --set-per-culture 2"
else
  DEVICE=cuda; STEPS=30000; MINUTES=2.6; PER=1000; EVAL=500; BATCH=128; RES=64; BENCH="--no-compile"
fi

python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu')"

# 1. Three variants at once: A = defaults (Adam 0.0/0.99, lr 2e-4 both), B = DCGAN's Adam (0.5/0.999) with
#    a slower D (lr_D 1e-4), C = DCGAN's Adam and learning rates (0.5/0.999, 2e-4 both).
train() {
  python3 -m culturelab.generation.train --data motifs --resolution "$RES" --per-culture "$PER" --steps "$STEPS" \
    --batch-size "$BATCH" --g-channels 24 --d-channels 32 --max-minutes "$MINUTES" --device "$DEVICE" \
    --log-every 100 --sample-every 1000 --checkpoint-every 100000 --out "$RUNS/$1" "${@:2}" > "$RUNS/$1.log" 2>&1
  echo "variant $1 exit $? $(tail -n 1 "$RUNS/$1/metrics.jsonl")"
}
train A &
train B --beta1 0.5 --beta2 0.999 --lr-d 1e-4 &
train C --beta1 0.5 --beta2 0.999 &
wait

# 2. Evaluate every variant's EMA and raw G against the same 500 real images per culture and classifier.
timeout 150 python3 - "$RUNS" "$EVAL" "$DEVICE" "$RES" <<'EOF'
import json, sys
from pathlib import Path
from culturelab.generation import checkpoint
from culturelab.generation.data import motif_images
from culturelab.generation.evaluate import REAL_SEED_OFFSET, evaluate
runs, n, device, res = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
real = motif_images(n, res, REAL_SEED_OFFSET)
classifier = runs / f"classifier-motifs-s0-n{n}-{res}px.safetensors"
summary = {}
for run in sorted(p for p in runs.iterdir() if p.is_dir()):
    ckpt = run / "checkpoint.safetensors"
    if not ckpt.exists():
        continue
    g, header = checkpoint.load_generator(ckpt, weights="g")
    checkpoint.save_generator(run / "generator-raw.safetensors", g.config, g, {"train": header["train"], "step": header["step"]})
    for name in ("generator.safetensors", "generator-raw.safetensors"):
        path = run / name
        r = evaluate(path, "motifs", per_culture=n, device=device, real=real, classifier_path=classifier)
        path.with_name(path.stem + ".evaluation.json").write_text(json.dumps(r, indent=2) + "\n")
        summary[f"{run.name}/{name}"] = r["summary"] | {"step": header["step"], "classifier_val": r["classifier"]["val_accuracy"]}
        print(run.name, name, json.dumps(summary[f"{run.name}/{name}"]), flush=True)
    ckpt.unlink()
Path(sys.argv[1], "summary.json").write_text(json.dumps(summary, indent=2))
EOF
echo "evaluate exit $?"
cp "$RUNS/summary.json" "$OUT/" 2>/dev/null
for v in A B C; do tar czf "$OUT/run-$v.tgz" -C "$RUNS" "$v" "$v.log"; done

# 3. Speed on CUDA (eager; torch.compile figures came from the first GPU run), with variant A's generator.
timeout 60 python3 benchmarks/generation.py --device "$DEVICE" --checkpoint "$RUNS/A/generator.safetensors" \
  $BENCH | tee "$OUT/bench.json"
echo "bench exit $?"
