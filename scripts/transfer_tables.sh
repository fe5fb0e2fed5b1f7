#!/usr/bin/env bash
# The paper's transfer experiment end to end: for each refinement row, train the backbone,
# fine-tune Faster R-CNN and FCN from its checkpoint, evaluate all three, and write
# OUT/results.md (Tables 6, 8 and 9 beside the paper's numbers, with times and commands) and
# OUT/tables.png.
#
# Finished stages are reused: stop the script and run it again, it continues where it stopped
# (an interrupted training run resumes from its state). A failed stage names its log, the
# stages of that row that need it are skipped, and the other rows go on.
set -uo pipefail

usage() {
  cat <<'EOF'
usage: scripts/transfer_tables.sh [--profile demo|smoke|mini|paper] [--device cpu|cuda]
                                  [--nproc N] [--out DIR] [--rows ROW,ROW,...]
                                  [--imagenet ROOT] [--voc ROOT] [--ade20k ROOT]

profiles
  demo    two rows (b-standard, distill-mixup) on Fashion-MNIST and the Fashion scenes; what
          `make demo` runs (at most 20 minutes on a 2-core CPU)
  smoke   all seven rows, tiny (at most 15 minutes on a 2-core CPU)
  mini    all seven rows on Fashion-MNIST and the Fashion scenes (at most 2 hours on a 2-core
          CPU, much less on one GPU)
  paper   ImageNet, VOC07+12 / VOC07 test and ADE20K with the paper's recipes
          (configs/backbone/imagenet-*.toml, configs/detection/voc-c4.toml,
          configs/segmentation/ade20k-fcn.toml); needs --imagenet, --voc and --ade20k, and GPUs

rows (in the paper's order)
  b-standard d-efficient cosine smooth distill mixup distill-mixup
  (distill and distill-mixup train their teacher first: rows teacher and teacher-mixup)

options
  --device cpu|cuda   where every stage runs (cuda also turns on fp16 for the efficient rows)
  --nproc N           data-parallel ranks per training stage (one machine)
  --out DIR           where everything goes (default runs/tables-PROFILE)

environment
  TABLES_BIN          folder of the backbone, detect, segment and datasets binaries
                      (default target/release; `make build` builds them)
EOF
}

root=$(cd "$(dirname "$0")/.." && pwd)
profile=mini device=cpu nproc=1 out="" rows="" imagenet="" voc="" ade20k=""
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile=${2:-}; shift 2 ;;
    --device) device=${2:-}; shift 2 ;;
    --nproc) nproc=${2:-}; shift 2 ;;
    --out) out=${2:-}; shift 2 ;;
    --rows) rows=${2:-}; shift 2 ;;
    --imagenet) imagenet=${2:-}; shift 2 ;;
    --voc) voc=${2:-}; shift 2 ;;
    --ade20k) ade20k=${2:-}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "transfer_tables: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
die() { echo "transfer_tables: $*" >&2; exit 2; }
case "$profile" in demo|smoke|mini|paper|ci) ;; *) die "unknown profile '$profile': demo, smoke, mini or paper" ;; esac
case "$device" in cpu|cuda|cuda:[0-9]*) ;; *) die "unknown device '$device': cpu or cuda" ;; esac
[[ "$nproc" =~ ^[1-9][0-9]*$ ]] || die "--nproc must be a positive integer, not '$nproc'"
out=${out:-$root/runs/tables-$profile}
bin=${TABLES_BIN:-$root/target/release}
for b in backbone detect segment datasets; do
  [ -x "$bin/$b" ] || die "$bin/$b is missing: run \`make build\` (or set TABLES_BIN)"
done

all_rows="b-standard d-efficient cosine smooth distill mixup distill-mixup"
if [ -z "$rows" ]; then
  if [ "$profile" = demo ]; then rows="b-standard distill-mixup"; else rows=$all_rows; fi
else
  rows=${rows//,/ }
  for r in $rows; do [[ " $all_rows " == *" $r "* ]] || die "unknown row '$r': $all_rows"; done
fi

# --- what each profile trains on, and for how long ------------------------------------------
# Each list holds --set overrides for one kind of stage; recipes live in configs/.
case "$profile" in
  paper)
    [ -n "$imagenet" ] && [ -n "$voc" ] && [ -n "$ade20k" ] \
      || die "the paper profile needs --imagenet ROOT --voc ROOT --ade20k ROOT"
    missing=""
    for d in "$imagenet/train" "$imagenet/val"; do [ -d "$d" ] || missing+="  $d (ImageNet: ROOT/{train,val}/<class>/*.JPEG)\n"; done
    for y in VOC2007 VOC2012; do
      [ -d "$voc/$y" ] || [ -d "$voc/VOCdevkit/$y" ] || missing+="  $voc/$y (VOCdevkit with VOC2007 trainval+test and VOC2012 trainval)\n"
    done
    for d in images/training images/validation annotations/training annotations/validation; do
      [ -d "$ade20k/$d" ] || missing+="  $ade20k/$d (ADEChallengeData2016)\n"
    done
    [ -z "$missing" ] || { printf 'transfer_tables: missing data:\n%b' "$missing" >&2; exit 2; }
    cls_data="imagenet:$imagenet" det_data="voc:$voc" seg_data="ade20k:$ade20k"
    det_config=configs/detection/voc-c4.toml seg_config=configs/segmentation/ade20k-fcn.toml
    backbone_sets=() step_sets=() teacher_sets=() det_sets=() seg_sets=() eval_flags=()
    ;;
  *)
    fm_file=$root/target/fashion-mnist-dir
    [ -s "$fm_file" ] || die "no Fashion-MNIST: run scripts/setup.sh"
    cls_data="fashion-mnist:$(cat "$fm_file")"
    scenes=$out/data/scenes
    det_data="voc:$scenes/VOCdevkit" seg_data="ade20k:$scenes/ADEChallengeData2016"
    # FPN, not the paper's C4: C4 runs layer4 on every RoI, which costs a CPU about 1.5 times
    # as much per image at these sizes (docs/results.md); the paper profile keeps C4.
    det_config=configs/detection/fashion-scenes-fpn.toml
    seg_config=configs/segmentation/fashion-scenes-fcn.toml
    case "$profile" in
      mini)
        scene_args=(--size 128 --train 800 --val 100 --test 200) eval_flags=()
        backbone_sets=(--set schedule.epochs=2) step_sets=(--set 'schedule.decay.epochs=[1.4]')
        teacher_sets=(--set schedule.epochs=2)
        det_sets=(--set schedule.epochs=3) seg_sets=(--set schedule.epochs=8 --set train.eval_every_epochs=2) ;;
      demo)
        scene_args=(--size 128 --train 300 --val 50 --test 100) eval_flags=(--max-samples 2000)
        backbone_sets=(--set schedule.epochs=1 --set data.max_train_samples=20000) step_sets=(--set 'schedule.decay.epochs=[0.7]')
        teacher_sets=(--set schedule.epochs=1 --set data.max_train_samples=20000)
        det_sets=(--set schedule.epochs=4) seg_sets=(--set schedule.epochs=4) ;;
      smoke)
        scene_args=(--size 96 --train 60 --val 20 --test 20) eval_flags=(--max-samples 1000)
        backbone_sets=(--set schedule.epochs=1 --set data.max_train_samples=3000 --set data.max_val_samples=1000) step_sets=(--set 'schedule.decay.epochs=[0.7]')
        teacher_sets=(--set schedule.epochs=1 --set data.max_train_samples=3000 --set data.max_val_samples=1000)
        det_sets=(--set schedule.epochs=1 --set data.shorter=96 --set data.max_longer=96) seg_sets=(--set schedule.epochs=1) ;;
      ci)  # the test suite's: a few steps of everything, to check the orchestration
        scene_args=(--size 64 --train 8 --val 4 --test 4) eval_flags=(--max-samples 64)
        backbone_sets=(--set schedule.epochs=1 --set data.max_train_samples=64 --set data.max_val_samples=64 --set data.batch_size=32) step_sets=(--set 'schedule.decay.epochs=[0.7]')
        teacher_sets=(--set schedule.epochs=1 --set data.max_train_samples=64 --set data.max_val_samples=64 --set data.batch_size=32)
        det_sets=(--set schedule.epochs=1 --set data.shorter=64 --set data.max_longer=64 --set data.batch_size=2 --set data.workers=1)
        seg_sets=(--set schedule.epochs=1 --set data.base_size=64 --set data.crop_size=64 --set data.batch_size=2 --set data.workers=1) ;;
    esac
    ;;
esac

# The recipe of a backbone row: the paper's ImageNet config, or its Fashion-MNIST counterpart.
backbone_config() {
  if [ "$profile" = paper ]; then
    case "$1" in
      b-standard) echo configs/backbone/imagenet-resnet50b-baseline.toml ;;
      d-efficient) echo configs/backbone/imagenet-resnet50d-efficient.toml ;;
      cosine) echo configs/backbone/imagenet-resnet50d-cosine.toml ;;
      smooth) echo configs/backbone/imagenet-resnet50d-cosine-smooth.toml ;;
      distill) echo configs/backbone/imagenet-resnet50d-cosine-smooth-distill.toml ;;
      mixup) echo configs/backbone/imagenet-resnet50d-cosine-smooth-mixup.toml ;;
      distill-mixup) echo configs/backbone/imagenet-resnet50d-cosine-smooth-distill-mixup.toml ;;
      teacher) echo configs/backbone/imagenet-resnet152d-teacher.toml ;;
      teacher-mixup) echo configs/backbone/imagenet-resnet152d-teacher-mixup.toml ;;
    esac
  else
    echo "configs/tables/$1.toml"
  fi
}
teacher_of() { case "$1" in distill) echo teacher ;; distill-mixup) echo teacher-mixup ;; esac; }

run_flags=(--device "$device")
[ "$nproc" -gt 1 ] && run_flags+=(--nproc "$nproc")
amp_sets() { case "$device" in cuda*) [ "$1" = b-standard ] || echo "--set train.amp=true" ;; esac; }

# --- stages ----------------------------------------------------------------------------------
# A finished stage leaves ROW/STAGE.done (its wall time and command); a failed one leaves
# ROW/STAGE.failed (its log). Evaluation stages write their JSON to ROW/STAGE.json.
mkdir -p "$out"
quote() { printf '%q ' "$@"; }
stage() {
  local row=$1 name=$2 json=$3; shift 3
  local dir=$out/$row; mkdir -p "$dir"
  local done=$dir/$name.done log=$dir/$name.log
  if [ -f "$done" ]; then echo "[$row] $name: finished earlier, reused"; return 0; fi
  rm -f "$dir/$name.failed"
  echo "[$row] $name: $(quote "$@")"
  local start rc=0; start=$(date +%s%N)
  if [ -n "$json" ]; then "$@" > "$dir/$json.tmp" 2> "$log" || rc=$?
  else "$@" > "$log" 2>&1 || rc=$?; fi
  if [ "$rc" -ne 0 ]; then
    echo "$log" > "$dir/$name.failed"
    echo "[$row] $name FAILED (exit $rc): see $log" >&2
    tail -n 3 "$log" | sed "s/^/[$row]   /" >&2
    return 1
  fi
  [ -z "$json" ] || mv "$dir/$json.tmp" "$dir/$json"
  local ms=$(( ($(date +%s%N) - start) / 1000000 ))
  printf 'seconds %d.%03d\ncommand %s\n' $((ms / 1000)) $((ms % 1000)) "$(quote "$@")" > "$done.tmp"
  mv "$done.tmp" "$done"
}
# A training stage continues an interrupted run of the same stage.
resume_flag() { [ -f "$1/state.safetensors" ] && echo --resume; }

train_backbone() {
  local row=$1 run=$out/$1/backbone sets=("${backbone_sets[@]}")
  case "$row" in
    teacher*) sets=("${teacher_sets[@]}") ;;
    b-standard|d-efficient) sets+=("${step_sets[@]}") ;;
  esac
  local teacher; teacher=$(teacher_of "$row")
  if [ -n "$teacher" ]; then
    [ -f "$out/$teacher/backbone.done" ] || { echo "[$row] skipped: its teacher ($teacher) did not finish" >&2; return 1; }
    sets+=(--set "distill.teacher=\"$out/$teacher/backbone/best.safetensors\"")
  fi
  # shellcheck disable=SC2046
  stage "$row" backbone "" "$bin/backbone" train --config "$(backbone_config "$row")" \
    --data "$cls_data" --out "$run" "${run_flags[@]}" "${sets[@]}" $(amp_sets "$row") $(resume_flag "$run") \
  && stage "$row" backbone-eval backbone.json "$bin/backbone" eval --ckpt "$run/best.safetensors" \
    --data "$cls_data" --device "$device" "${eval_flags[@]}" --json
}

transfer() {
  local row=$1 ckpt=$out/$1/backbone/best.safetensors det=$out/$1/detection seg=$out/$1/segmentation
  # shellcheck disable=SC2046
  stage "$row" detection "" "$bin/detect" finetune --backbone "$ckpt" --data "$det_data" \
    --config "$det_config" --out "$det" "${run_flags[@]}" "${det_sets[@]}" $(amp_sets "$row") $(resume_flag "$det") \
  && stage "$row" detection-eval detection.json "$bin/detect" eval --ckpt "$det/best.safetensors" \
    --data "$det_data" --split test --metric voc07 --device "$device" --json
  # shellcheck disable=SC2046
  stage "$row" segmentation "" "$bin/segment" finetune --backbone "$ckpt" --data "$seg_data" \
    --config "$seg_config" --out "$seg" "${run_flags[@]}" "${seg_sets[@]}" $(amp_sets "$row") $(resume_flag "$seg") \
  && stage "$row" segmentation-eval segmentation.json "$bin/segment" eval --ckpt "$seg/best.safetensors" \
    --data "$seg_data" --split validation --device "$device" --json
}

# Detections drawn on the first few test scenes and segmentation overlays of the first few
# validation scenes, from the row's fine-tuned models (the Fashion-scene profiles).
pictures() {
  local row=$1 dir=$out/$1/pictures n=4 id img
  mkdir -p "$dir"
  head -n "$n" "$scenes/VOCdevkit/VOC2007/ImageSets/Main/test.txt" | while read -r id; do
    "$bin/detect" predict --ckpt "$out/$row/detection/best.safetensors" \
      --image "$scenes/VOCdevkit/VOC2007/JPEGImages/$id.jpg" --out "$dir/detections-$id.png" \
      --min-score 0.5 --device "$device" || exit 1
  done || return 1
  find "$scenes/ADEChallengeData2016/images/validation" -maxdepth 1 -name '*.jpg' | sort | head -n "$n" |
    while read -r img; do
      id=$(basename "$img" .jpg)
      "$bin/segment" predict --ckpt "$out/$row/segmentation/best.safetensors" --image "$img" \
        --out "$dir/mask-$id.png" --overlay "$dir/overlay-$id.png" --device "$device" || exit 1
    done
}

started=$(date +%s)
if [ "$profile" != paper ]; then
  stage data scenes "" "$bin/datasets" synth --out "$scenes" "${scene_args[@]}" --seed 0 --preview 8 \
    || die "could not write the Fashion scenes: see $out/data/scenes.log"
fi
teachers=""
for r in $rows; do t=$(teacher_of "$r"); [ -z "$t" ] || [[ " $teachers " == *" $t "* ]] || teachers+=" $t"; done
for t in $teachers; do train_backbone "$t" || true; done
for r in $rows; do
  if train_backbone "$r"; then transfer "$r" || true; fi
  if [ "$profile" != paper ] && [ -f "$out/$r/detection.done" ] && [ -f "$out/$r/segmentation.done" ]; then
    stage "$r" pictures "" pictures "$r" || true
  fi
done

echo
echo "all stages done in $(( $(date +%s) - started )) s (stages reused from earlier runs count 0)"
"$bin/backbone" tables --dir "$out" --profile "$profile" --rows "${rows// /,}" || exit 1

echo
echo "pictures"
echo "  the chart of the three tables:  $out/tables.png"
for r in $rows; do
  for f in backbone/curves.png detection/curves.png segmentation/curves.png; do
    [ -f "$out/$r/$f" ] && echo "  $r training curves:  $out/$r/$f"
  done
  [ -d "$out/$r/pictures" ] && echo "  $r detections and segmentation overlays:  $out/$r/pictures/"
done
[ -f "${scenes:-/nonexistent}/preview.png" ] && echo "  the scenes with their boxes and masks:  $scenes/preview.png"
exit 0
