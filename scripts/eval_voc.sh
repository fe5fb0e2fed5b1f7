#!/usr/bin/env bash
# The paper's detection evaluation (Table 8): a Faster R-CNN checkpoint on VOC2007 test,
# 11-point mAP as GluonCV's VOC07MApMetric computes it (the metric behind the paper's
# numbers), difficult boxes ignored. Prints one paper-style line; the full JSON (per-class
# AP) goes beside the checkpoint.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: scripts/eval_voc.sh CKPT VOC_ROOT [--metric NAME] [--device cpu|cuda] [--out FILE.json]

  CKPT      a detection checkpoint (detect finetune, detect import)
  VOC_ROOT  the folder the VOC tars were unpacked in (holding VOCdevkit/), the VOCdevkit
            folder, or VOC2007 itself. Only VOC2007 test is evaluated (VOC07 test): a VOC2012
            folder beside it (whose test.txt, from the VOC2012 test tar, lists images without
            annotations) is never read.
  --metric  voc07-gluoncv (default): GluonCV's VOC07MApMetric, what the paper reports;
            voc07: the VOC devkit's own 11-point rule (VOCevaldet.m)
  --out     where the JSON goes (default: beside CKPT, <ckpt>.voc07-test.json)

environment
  TABLES_BIN  folder of the detect binary (default target/release; `make build` builds it)
USAGE
}

[ $# -ge 2 ] || { usage >&2; exit 2; }
case "$1" in -h|--help) usage; exit 0 ;; esac
ckpt=$1 voc=$2; shift 2
device=cpu json="" metric=voc07-gluoncv
while [ $# -gt 0 ]; do
  case "$1" in
    --metric) metric=${2:?--metric needs a value}; shift 2 ;;
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
# The VOC2007 folder itself goes to `detect eval`, so no other year can be read.
voc07=""
for d in "$voc/VOCdevkit/VOC2007" "$voc/VOC2007" "$voc"; do
  if [ -f "$d/ImageSets/Main/test.txt" ] && [ "$(basename "$(cd "$d" && pwd)")" = VOC2007 ]; then
    voc07=$d; break
  fi
done
[ -n "$voc07" ] || {
  echo "eval_voc: $voc has no VOC2007/ImageSets/Main/test.txt (looked in $voc/VOCdevkit/VOC2007, $voc/VOC2007 and $voc; VOC2007 test is what the paper reports)" >&2
  exit 2
}
test_list=$voc07/ImageSets/Main/test.txt
json=${json:-${ckpt%.safetensors}.voc07-test.json}

"$bin/detect" eval --ckpt "$ckpt" --data "voc:$voc07" --split test --metric "$metric" \
  --device "$device" --json > "$json.tmp"
mv "$json.tmp" "$json"
map=$(sed -n 's/.*"map": *\([-0-9.eE+]*\).*/\1/p' "$json" | head -n 1)
[ -n "$map" ] || { echo "eval_voc: no mAP in $json" >&2; exit 1; }
images=$(grep -c . "$test_list")
awk -v m="$map" -v n="$images" -v j="$json" -v r="$metric" \
  'BEGIN { printf "Faster R-CNN, VOC2007 test (%d images), 11-point mAP: %.2f [%s]   (%s)\n", n, 100 * m, r, j }'
