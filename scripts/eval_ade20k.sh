#!/usr/bin/env bash
# The paper's segmentation evaluation (Table 9): an FCN checkpoint on ADE20K validation,
# single-scale and GluonCV's multi-scale (scales 0.5..1.75 of 520, 480 sliding window, flips).
# Prints one paper-style line per setting; the full JSON (per-class IoU) goes beside the
# checkpoint.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: scripts/eval_ade20k.sh CKPT ADE_ROOT [--device cpu|cuda] [--single-scale-only]

  CKPT      a segmentation checkpoint (segment finetune, segment import)
  ADE_ROOT  the ADEChallengeData2016 folder (images/validation, annotations/validation)
  --single-scale-only   skip the multi-scale pass (it runs the model about 20 times per image)

The JSON files go beside CKPT: <ckpt>.ade20k-val.json and <ckpt>.ade20k-val-ms.json.

environment
  TABLES_BIN  folder of the segment binary (default target/release; `make build` builds it)
USAGE
}

[ $# -ge 2 ] || { usage >&2; exit 2; }
case "$1" in -h|--help) usage; exit 0 ;; esac
ckpt=$1 ade=$2; shift 2
device=cpu multi=1
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device=${2:?--device needs a value}; shift 2 ;;
    --single-scale-only) multi=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "eval_ade20k: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${TABLES_BIN:-$root/target/release}
[ -x "$bin/segment" ] || { echo "eval_ade20k: no $bin/segment: run make build" >&2; exit 2; }
[ -f "$ckpt" ] || { echo "eval_ade20k: no checkpoint $ckpt" >&2; exit 2; }
for d in images/validation annotations/validation; do
  [ -d "$ade/$d" ] || { echo "eval_ade20k: $ade has no $d (ADEChallengeData2016 validation is what the paper reports)" >&2; exit 2; }
done
images=$(find "$ade/images/validation" -maxdepth 1 -type f | wc -l)
base=${ckpt%.safetensors}

# One evaluation: its JSON file, then the paper-style line from it.
evaluate() {
  local label=$1 json=$2; shift 2
  "$bin/segment" eval --ckpt "$ckpt" --data "ade20k:$ade" --split validation \
    --device "$device" "$@" --json > "$json.tmp"
  mv "$json.tmp" "$json"
  local acc miou
  acc=$(sed -n 's/.*"pixAcc": *\([-0-9.eE+]*\).*/\1/p' "$json" | head -n 1)
  miou=$(sed -n 's/.*"mIoU": *\([-0-9.eE+]*\).*/\1/p' "$json" | head -n 1)
  [ -n "$acc" ] && [ -n "$miou" ] || { echo "eval_ade20k: no pixAcc/mIoU in $json" >&2; exit 1; }
  awk -v a="$acc" -v m="$miou" -v n="$images" -v l="$label" -v j="$json" \
    'BEGIN { printf "FCN, ADE20K validation (%d images), %s: PixAcc %.2f  mIoU %.2f   (%s)\n", n, l, 100 * a, 100 * m, j }'
}

evaluate "single-scale" "$base.ade20k-val.json"
[ "$multi" = 0 ] || evaluate "multi-scale + flip" "$base.ade20k-val-ms.json" --multi-scale
