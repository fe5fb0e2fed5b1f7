#!/usr/bin/env bash
# The paper's detection evaluation (Table 8): a Faster R-CNN checkpoint on VOC2007 test,
# 11-point mAP (VOC07's official metric, GluonCV's VOC07MApMetric), difficult boxes ignored.
# Prints one paper-style line; the full JSON (per-class AP) goes beside the checkpoint.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: scripts/eval_voc.sh CKPT VOC_ROOT [--device cpu|cuda] [--out FILE.json]

  CKPT      a detection checkpoint (detect finetune, detect import)
  VOC_ROOT  a VOCdevkit folder holding VOC2007 (with ImageSets/Main/test.txt), or VOC2007 itself
  --out     where the JSON goes (default: beside CKPT, <ckpt>.voc07-test.json)

environment
  TABLES_BIN  folder of the detect binary (default target/release; `make build` builds it)
USAGE
}

[ $# -ge 2 ] || { usage >&2; exit 2; }
case "$1" in -h|--help) usage; exit 0 ;; esac
ckpt=$1 voc=$2; shift 2
device=cpu json=""
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device=${2:?--device needs a value}; shift 2 ;;
    --out) json=${2:?--out needs a file}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "eval_voc: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${TABLES_BIN:-$root/target/release}
[ -x "$bin/detect" ] || { echo "eval_voc: no $bin/detect: run make build" >&2; exit 2; }
[ -f "$ckpt" ] || { echo "eval_voc: no checkpoint $ckpt" >&2; exit 2; }
test_list=""
for d in "$voc/VOC2007" "$voc"; do
  if [ -f "$d/ImageSets/Main/test.txt" ]; then test_list=$d/ImageSets/Main/test.txt; break; fi
done
[ -n "$test_list" ] || { echo "eval_voc: $voc has no VOC2007/ImageSets/Main/test.txt (VOC2007 test is what the paper reports)" >&2; exit 2; }
json=${json:-${ckpt%.safetensors}.voc07-test.json}

"$bin/detect" eval --ckpt "$ckpt" --data "voc:$voc" --split test --metric voc07 \
  --device "$device" --json > "$json.tmp"
mv "$json.tmp" "$json"
map=$(sed -n 's/.*"map": *\([-0-9.eE+]*\).*/\1/p' "$json" | head -n 1)
[ -n "$map" ] || { echo "eval_voc: no mAP in $json" >&2; exit 1; }
images=$(grep -c . "$test_list")
awk -v m="$map" -v n="$images" -v j="$json" \
  'BEGIN { printf "Faster R-CNN, VOC2007 test (%d images), 11-point mAP: %.2f   (%s)\n", n, 100 * m, j }'
