#!/usr/bin/env bash
# Train the translation GAN (generation/translation.py) in part of ONE lent GPU slot, restyle the built-in
# scenes with it and judge that set as docs/generation.md's comparison table does (issue 10: a translation
# model that keeps its content). Needs only what the lent machine has (torch, torchvision, numpy, pillow,
# safetensors, tqdm, scikit-image); culturelab is not installed there.
#
#   OUT=$OUT bash benchmarks/gpu_translation.sh                   # on the lent H100/H200 (~6 minutes)
#   OUT=/tmp/dry DEVICE=cpu BUDGET_MIN=0.3 PER_CULTURE=20 EVAL_PER_CULTURE=20 RESOLUTION=32 \
#       bash benchmarks/gpu_translation.sh                        # a dry run on a CPU
#
# $OUT receives 7 files, each under 16 MiB: generator.safetensors (+ .json), metrics.jsonl, samples.png (the
# last training grid), contact-sheet.png (the restyled scenes), set-evaluation.json and log.txt. The training
# checkpoint (G, D, Adam states) and the set stay in a scratch folder.
set -uo pipefail
OUT=${OUT:?set OUT}
DEVICE=${DEVICE:-cuda}
BUDGET_MIN=${BUDGET_MIN:-4}           # training wall clock
RESOLUTION=${RESOLUTION:-64}
PER_CULTURE=${PER_CULTURE:-500}
EVAL_PER_CULTURE=${EVAL_PER_CULTURE:-200}
BATCH=${BATCH:-16}
LAMBDA_CONTENT=${LAMBDA_CONTENT:-10}
UPSAMPLE=${UPSAMPLE:-transpose}       # or resize (no checkerboard)
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1

source benchmarks/generation_path.sh
work=$(mktemp -d)
export OUT DEVICE BUDGET_MIN RESOLUTION PER_CULTURE EVAL_PER_CULTURE BATCH LAMBDA_CONTENT UPSAMPLE work
echo "gpu_translation.sh $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
t0=$(date +%s)

timeout $(python3 -c "print(int($BUDGET_MIN * 60 + 180))") python3 - <<'PY'
import logging, os, torch
from culturelab.generation.translation_train import TranslationTrainConfig, train_translation
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
e = os.environ
print("torch", torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA")
if e["DEVICE"] == "cuda":
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
cfg = TranslationTrainConfig(
    out=f"{e['work']}/run", resolution=int(e["RESOLUTION"]), per_culture=int(e["PER_CULTURE"]),
    batch_size=int(e["BATCH"]), lambda_content=float(e["LAMBDA_CONTENT"]), steps=10**7,
    upsample=e["UPSAMPLE"],
    max_minutes=float(e["BUDGET_MIN"]), checkpoint_every=2000, log_every=100, device=e["DEVICE"],
)
train_translation(cfg, progress=False)
PY
echo "training exit $? after $(( $(date +%s) - t0 )) s"
run="$work/run"
cp "$run/generator.safetensors" "$run/generator.json" "$run/metrics.jsonl" "$OUT/" 2>/dev/null
last=$(ls "$run/samples/"*.png 2>/dev/null | tail -1)
[ -n "$last" ] && cp "$last" "$OUT/samples.png"
[ -f "$OUT/generator.safetensors" ] || { echo "no generator was exported"; exit 1; }

timeout 300 python3 - <<'PY'
import json, os, time
from pathlib import Path
from culturelab.generation.content_images import BUILTIN_CONTENT_DIR
from culturelab.generation.set_evaluation import evaluate_sets
from culturelab.generation.translate import write_translation_set
e = os.environ
out, work = Path(e["OUT"]), Path(e["work"])
t = time.perf_counter()
write_translation_set(out / "generator.safetensors", [BUILTIN_CONTENT_DIR], work / "translation", device=e["DEVICE"])
results = evaluate_sets([work / "translation"], per_culture=int(e["EVAL_PER_CULTURE"]), device=e["DEVICE"],
                        classifier_dir=work / "classifiers", report_dir=work)
(out / "set-evaluation.json").write_text(json.dumps(results, indent=2) + "\n")
print(f"translate + evaluate: {time.perf_counter() - t:.0f} s")
print(results["table"])
PY
echo "evaluation exit $?"
cp "$work/translation/contact-sheet.png" "$OUT/" 2>/dev/null
ls -la "$OUT"
echo "total $(( $(date +%s) - t0 )) s"
