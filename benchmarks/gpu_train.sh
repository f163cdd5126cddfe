#!/usr/bin/env bash
# Train the 128 px residual cGAN in ONE lent GPU slot (<= 15 minutes with start-up), checkpoint every minute,
# evaluate at the end; docs/generation.md, "The GPU recipe". Needs only torch, torchvision, numpy, pillow,
# safetensors and tqdm on the machine (no culturelab install, no download: the motifs are rendered there).
#
#   OUT=$OUT bash benchmarks/gpu_train.sh                       # on the lent H100/H200
#   OUT=/tmp/dry DEVICE=cpu BUDGET_MIN=0.5 PER_CULTURE=16 EVAL_PER_CULTURE=10 G_CH=2 D_CH=2 BATCH=8 \
#       bash benchmarks/gpu_train.sh                            # a dry run on a CPU
#
# $OUT receives at most 7 files, each under 16 MiB: generator.safetensors (+ .json; the EMA generator,
# rewritten every minute, so a slot cut short still returns the last one), metrics.jsonl, samples.png
# (the last grid, one row per culture), evaluation.json, bench.json (sampling images/s of that generator)
# and log.txt. The training checkpoint (G, D, Adam states: too big to come back) stays in a scratch folder.
# With STYLE_TRANSFER_UNTIL=S (seconds since the script started), benchmarks/style_transfer.py runs last, killed
# at S, into bench-style-transfer.json (the 8th file): issue 10's GPU figures from the same slot.
set -uo pipefail
OUT=${OUT:?set OUT}
DEVICE=${DEVICE:-cuda}
BUDGET_MIN=${BUDGET_MIN:-5.5}        # training wall clock, compile and timed checkpoints included (fits a 10-minute call)
PER_CULTURE=${PER_CULTURE:-2000}     # rendered motifs per culture (128 px, by all cores: ~10 s on 16)
EVAL_PER_CULTURE=${EVAL_PER_CULTURE:-200}
ARCH=${ARCH:-resnet}
RESOLUTION=${RESOLUTION:-128}
G_CH=${G_CH:-16}                     # resnet G at 128 px: 3.1 M parameters, a 12.6 MB generator file
D_CH=${D_CH:-16}
BATCH=${BATCH:-64}
DIFFAUG=${DIFFAUG:-translation,cutout}   # DiffAugment's choice for conditional BigGAN (Zhao et al. 2020)
COMPILE=${COMPILE:-$([ "$DEVICE" = cuda ] && echo 1 || echo 0)}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1

source benchmarks/generation_path.sh
work=$(mktemp -d)
export OUT DEVICE BUDGET_MIN PER_CULTURE EVAL_PER_CULTURE ARCH RESOLUTION G_CH D_CH BATCH DIFFAUG work
echo "gpu_train.sh $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
python3 - <<'PY' || exit 1
import importlib, torch
missing = [m for m in ("torchvision", "numpy", "PIL", "safetensors", "tqdm") if importlib.util.find_spec(m) is None]
print("torch", torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA")
if missing:
    raise SystemExit(f"missing Python packages: {', '.join(missing)}")
PY

train() {  # $1: minutes, $2: 1 = torch.compile
  timeout $(python3 -c "print(int($1 * 60 + 240))") python3 - "$1" "$2" <<'PY'
import logging, os, sys, torch
from culturelab.generation.train import TrainConfig, train
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
e = os.environ
cuda = e["DEVICE"] == "cuda"
if cuda:
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
cfg = TrainConfig(
    data="motifs", out=f"{e['work']}/run", generator_out=f"{e['OUT']}/generator.safetensors",
    arch=e["ARCH"], resolution=int(e["RESOLUTION"]), per_culture=int(e["PER_CULTURE"]),
    g_channels=int(e["G_CH"]), d_channels=int(e["D_CH"]), batch_size=int(e["BATCH"]), diffaug=e["DIFFAUG"],
    steps=10**7, max_minutes=float(sys.argv[1]), checkpoint_minutes=1.0, checkpoint_every=10**7,
    sample_every=1000, log_every=50, device=e["DEVICE"],
    bf16=cuda, channels_last=cuda, compile=sys.argv[2] == "1",
)
train(cfg, progress=False)
PY
}

t0=$(date +%s)
train "$BUDGET_MIN" "$COMPILE"
rc=$?
if [ $rc -ne 0 ] && [ "$COMPILE" = 1 ] && [ ! -f "$OUT/generator.safetensors" ]; then
  # torch.compile failed before the first checkpoint: spend what is left of the budget in eager mode
  left=$(python3 -c "print(max(1.0, $BUDGET_MIN - ($(date +%s) - $t0) / 60))")
  echo "training with torch.compile failed (exit $rc); eager for $left minutes"
  train "$left" 0
  rc=$?
fi
echo "training exit $rc after $(( $(date +%s) - t0 )) s"
cp "$work/run/metrics.jsonl" "$OUT/" 2>/dev/null
last=$(ls "$work/run/samples/"*.png 2>/dev/null | tail -1)
[ -n "$last" ] && cp "$last" "$OUT/samples.png"
[ -f "$OUT/generator.safetensors" ] || { echo "no generator was exported"; exit 1; }

timeout 240 python3 - <<'PY'
import json, os, time
from pathlib import Path
from culturelab.generation.evaluate import evaluate
e = os.environ
out = Path(e["OUT"])
t = time.perf_counter()
results = evaluate(out / "generator.safetensors", "motifs", per_culture=int(e["EVAL_PER_CULTURE"]), device=e["DEVICE"],
                   classifier_path=Path(e["work"]) / "classifier.safetensors", report_dir=out)
results["classifier"]["path"] = None  # trained on the lent machine and not kept
(out / "evaluation.json").write_text(json.dumps(results, indent=2) + "\n")
s = results["summary"]
per = {c: (round(r["accuracy"], 3), round(r["diversity_ratio"], 2)) for c, r in results["per_culture_results"].items()}
print(f"evaluation ({time.perf_counter() - t:.0f} s): accuracy {s['culture_accuracy']:.3f}, diversity ratio "
      f"{s['diversity_ratio']:.2f}, KID {s['kid']:.4f}, FID {s['fid']:.2f}; per culture {per}")
PY
echo "evaluation exit $?"
timeout 120 python3 benchmarks/generation.py --device "$DEVICE" --checkpoint "$OUT/generator.safetensors" --quick \
  > "$OUT/bench.json"
echo "benchmark exit $?: $(cat "$OUT/bench.json")"
left=$(( ${STYLE_TRANSFER_UNTIL:-0} - SECONDS ))
if [ "$left" -gt 20 ]; then
  timeout "$left" python3 benchmarks/style_transfer.py --device "$DEVICE" --skip vs_bare_vgg \
    > "$OUT/bench-style-transfer.json"
  echo "style transfer exit $? ($left s allowed): $(cat "$OUT/bench-style-transfer.json")"
fi
ls -la "$OUT"
echo "total $(( $(date +%s) - t0 )) s"
