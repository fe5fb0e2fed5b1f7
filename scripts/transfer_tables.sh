#!/usr/bin/env bash
# The paper's transfer experiment end to end: for each refinement row, train the backbone,
# fine-tune Faster R-CNN and FCN from its checkpoint, evaluate all three, and write
# OUT/results.md (Tables 6, 8 and 9 beside the paper's numbers, with times and commands) and
# OUT/tables.png.
#
# Finished stages are reused: stop the script and run it again, it continues where it stopped
# (an interrupted training run resumes from its state), as long as the profile's schedule is
# the same (OUT/schedule.txt). A failed stage names its log, the
# stages of that row that need it are skipped, and the other rows go on.
#
# --dry-run runs every stage of every row (teachers included) with its real recipe for a few
# optimiser steps, and every evaluation on a handful of images, so that problems with data,
# recipes, paths or the first steps' memory show up in minutes, not after a week.
#
# --columns adds Table 6's other two networks (Inception-V3, MobileNet): the same rows, backbone
# stages only (the paper transfers only ResNet-50-D), each in OUT/COLUMN/ROW.
set -uo pipefail

usage() {
  cat <<'EOF'
usage: scripts/transfer_tables.sh [--profile demo|smoke|mini|paper] [--device cpu|cuda]
                                  [--nproc N] [--out DIR] [--rows ROW,ROW,...] [--dry-run]
                                  [--columns COLUMN,COLUMN,...]
                                  [--imagenet ROOT] [--voc ROOT] [--ade20k ROOT]

profiles
  demo    two rows (b-standard, + smooth) on Fashion-MNIST and 96 px Fashion scenes; what
          `make demo` runs (18 minutes on a 2-core AMD EPYC with AVX-512, docs/results.md)
  smoke   all seven rows, tiny (at most 15 minutes on a 2-core CPU)
  mini    all seven rows on Fashion-MNIST and the Fashion scenes (at most 2 hours on a 2-core
          CPU, much less on one GPU)
  paper   ImageNet, VOC07+12 / VOC07 test and ADE20K with the paper's recipes
          (configs/backbone/imagenet-*.toml, configs/detection/voc-c4.toml,
          configs/segmentation/ade20k-fcn.toml); needs --imagenet ROOT ({train,val}/<class>/),
          --voc ROOT (a VOCdevkit with VOC2007 trainval+test and VOC2012 trainval, or the
          folder holding it) and --ade20k ROOT (ADEChallengeData2016), and GPUs. Before
          anything trains, every split is opened with `datasets check`; all problems are
          listed at once. Evaluated as the paper's numbers were: VOC07 test with GluonCV's
          VOC07MApMetric, ADE20K validation multi-scale with flips (GluonCV's test.py) from
          the final epoch's checkpoint.

rows (in the paper's order)
  b-standard d-efficient cosine smooth distill mixup distill-mixup
  (distill and distill-mixup train their teacher first: rows teacher and teacher-mixup)

columns (Table 6's networks, in --columns; default resnet50d)
  resnet50d      ResNet-50-D: the rows above, each fine-tuned for detection and segmentation
                 (Tables 8 and 9); folders OUT/ROW
  inception_v3   Inception-V3, backbone stages only (classification: the paper transfers only
                 ResNet-50-D); folders OUT/inception_v3/ROW. Paper profile:
                 configs/backbone/imagenet-inception_v3-*.toml (299 px); the others:
                 configs/tables/inception_v3/ROW.toml (Fashion-MNIST upscaled to 75 px)
  mobilenet_v1   MobileNet v1, the same way; folders OUT/mobilenet_v1/ROW. Paper profile:
                 configs/backbone/imagenet-mobilenet_v1-*.toml (224 px); the others:
                 configs/tables/mobilenet_v1/ROW.toml (32 px)
  Their B-standard is Table 3's baseline setting. Their distilled rows learn from the
  ResNet-152-D teachers (paper profile: the same teacher rows as ResNet-50-D's, as the paper
  distils all three from it) or from ResNet-34-D teachers trained at the column's input size
  (the other profiles: rows COLUMN/teacher and COLUMN/teacher-mixup). results.md prints them
  beside ResNet-50-D's in Table 6; tables.png shows ResNet-50-D only. They add their own time
  to a profile's (on a CPU Inception-V3's 75 px rows are the slowest; docs/results.md).

options
  --device cpu|cuda   where every stage runs. Precision: a backbone recipe's own (paper: fp16
                      for the efficient rows; Fashion profiles: fp16 on cuda for every row but
                      b-standard); detection and segmentation fine-tune every row in fp32, as
                      GluonCV did. On cpu, recipes that ask for fp16 run in fp32 (said once;
                      the commands alone would run them in bf16, slower than fp32 on CPUs
                      without bf16 units, and not the precision of the recorded CPU tables).
  --nproc N           data-parallel ranks per training stage (one machine)
  --out DIR           where everything goes (default runs/tables-PROFILE, or
                      runs/tables-PROFILE-dry-run with --dry-run)
  --columns C,C,...   the networks of Table 6 to train (see columns; default resnet50d)
  --dry-run           every stage of every row with its real recipe (models, sizes, heads,
                      losses, data readers) but only DRY_STEPS optimiser steps (default 2),
                      in-training validation and evaluations on a handful of images, and for
                      the paper profile on cpu a batch of 2 (1 for segmentation; no
                      accumulation); results.md says it is a dry run

environment
  TABLES_BIN          folder of the backbone, detect, segment and datasets binaries
                      (default target/release; `make build` builds them)
  DRY_STEPS           optimiser steps of each training stage in a dry run (default 2)
EOF
}

root=$(cd "$(dirname "$0")/.." && pwd)
profile=mini device=cpu nproc=1 out="" rows="" imagenet="" voc="" ade20k="" dry_run=0 max_backbone_batch=""
columns=resnet50d
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry_run=1; shift ;;
    --profile) profile=${2:-}; shift 2 ;;
    --device) device=${2:-}; shift 2 ;;
    --nproc) nproc=${2:-}; shift 2 ;;
    --out) out=${2:-}; shift 2 ;;
    --rows) rows=${2:-}; shift 2 ;;
    --columns) columns=${2:-}; shift 2 ;;
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
# The stages name their recipes from the repository (configs/...), so the script runs there,
# with the user's own paths made absolute first.
absolute() { [ -z "$1" ] || realpath -m -- "$1"; }
out=$(absolute "$out") imagenet=$(absolute "$imagenet") voc=$(absolute "$voc") ade20k=$(absolute "$ade20k")
[ -z "${TABLES_BIN:-}" ] || TABLES_BIN=$(absolute "$TABLES_BIN")
cd "$root" || die "cannot enter $root"
# Table 6's networks: resnet50d (every stage) and the others (backbones only, OUT/COLUMN/ROW).
all_columns="resnet50d inception_v3 mobilenet_v1"
run_resnet=0 extra_columns=""
columns=${columns// /}
[ -n "${columns//,/}" ] || die "--columns needs at least one of: ${all_columns// /, }"
for c in ${columns//,/ }; do
  [[ " $all_columns " == *" $c "* ]] || die "unknown column '$c': ${all_columns// /, }"
done
# In the paper's order, each once.
for c in $all_columns; do
  [[ ",$columns," == *",$c,"* ]] || continue
  if [ "$c" = resnet50d ]; then run_resnet=1; else extra_columns+="${extra_columns:+ }$c"; fi
done
columns=$extra_columns; [ "$run_resnet" = 0 ] || columns="resnet50d${columns:+ }$columns"
if [ "$dry_run" = 1 ]; then out=${out:-$root/runs/tables-$profile-dry-run}; else out=${out:-$root/runs/tables-$profile}; fi
dry_steps=${DRY_STEPS:-2}
[[ "$dry_steps" =~ ^[1-9][0-9]*$ ]] || die "DRY_STEPS must be a positive integer, not '$dry_steps'"
bin=${TABLES_BIN:-$root/target/release}
for b in backbone detect segment datasets tables; do
  [ -x "$bin/$b" ] || die "$bin/$b is missing: run \`make build\` (or set TABLES_BIN)"
done

all_rows="b-standard d-efficient cosine smooth distill mixup distill-mixup"
if [ -z "$rows" ]; then
  if [ "$profile" = demo ]; then rows="b-standard smooth"; else rows=$all_rows; fi
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
    # --voc names a VOCdevkit or the folder that holds one.
    [ -d "$voc/VOCdevkit" ] && voc=$voc/VOCdevkit
    cls_data="imagenet:$imagenet" det_data="voc:$voc" seg_data="ade20k:$ade20k"
    # Every split the stages will read, opened by the readers the stages use, before anything
    # trains; every problem of every split in one message.
    mkdir -p "$out"
    echo "checking the data (datasets check; the log: $out/data-check.log)"
    : > "$out/data-check.log"
    problems=""
    check_splits() {
      local spec=$1 report rc=0; shift
      report=$("$bin/datasets" check "$spec" "$@" 2>&1) || rc=$?
      printf '$ datasets check %s %s\n%s\n\n' "$spec" "$*" "$report" >> "$out/data-check.log"
      [ "$rc" -eq 0 ] || problems+="  $spec ($*):"$'\n'"$(printf '%s\n' "$report" | sed 's/^/    /')"$'\n'
    }
    check_splits "$cls_data" --split train --split val
    check_splits "$det_data" --split trainval --split test
    check_splits "$seg_data" --split training --split validation
    [ -z "$problems" ] || {
      printf 'transfer_tables: the paper profile cannot start: its data has problems (nothing was trained):\n%s' "$problems" >&2
      exit 2
    }
    det_config=configs/detection/voc-c4.toml seg_config=configs/segmentation/ade20k-fcn.toml
    backbone_sets=() step_sets=() teacher_sets=() det_sets=() seg_sets=() eval_flags=()
    # GluonCV's VOC07MApMetric, from which Table 8 came; GluonCV's test.py, multi-scale with
    # flips over whole validation images (the ADE settings, base 520, crop 480), for Table 9.
    det_metric=voc07-gluoncv seg_eval_flags=(--multi-scale)
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
    det_metric=voc07 seg_eval_flags=()
    case "$profile" in
      mini)
        scene_args=(--size 128 --train 800 --val 100 --test 200) eval_flags=()
        backbone_sets=(--set schedule.epochs=2) step_sets=(--set 'schedule.decay.epochs=[1.4]')
        teacher_sets=(--set schedule.epochs=2)
        det_sets=(--set schedule.epochs=3) seg_sets=(--set schedule.epochs=8 --set train.eval_every_epochs=2) ;;
      demo)
        # 96 px scenes: detection costs about 0.6 of what 128 px does per image and reaches
        # the same mAP per image seen. One short epoch of Fashion-MNIST per backbone, with
        # at most 256 images per step so that the large-batch rows still take ~80 steps; the
        # time goes to the fine-tunings, whose pictures are what the demo shows. Each
        # detector sees 3,600 scenes (mAP passes 0.40 near there; 1,800 gave 0.33) and each
        # FCN 14,400 crops, 1,200 scenes seen 3 and 12 times: more scenes rather than more
        # passes over fewer (docs/results.md has the measured run and the probes).
        scene_args=(--size 96 --train 1200 --val 100 --test 100) eval_flags=(--max-samples 2000)
        backbone_sets=(--set schedule.epochs=1 --set data.max_train_samples=20000 --set data.max_val_samples=2000)
        step_sets=(--set 'schedule.decay.epochs=[0.7]') max_backbone_batch=256
        teacher_sets=("${backbone_sets[@]}")
        det_sets=(--set schedule.epochs=3 --set data.shorter=96 --set data.max_longer=96 --set train.eval_every_epochs=3)
        seg_sets=(--set schedule.epochs=12 --set train.eval_every_epochs=6) ;;
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

# The recipe of a backbone row: the paper's ImageNet config, or its Fashion-MNIST counterpart;
# with a COLUMN other than resnet50d, that network's (its teachers are ResNet-50-D's in the
# paper profile, its own, at its input size, in the others).
backbone_config() {  # ROW [COLUMN]
  local column=${2:-resnet50d}
  if [ "$column" != resnet50d ]; then
    case "$profile:$1" in
      paper:teacher*) backbone_config "$1" ;;
      paper:b-standard) echo "configs/backbone/imagenet-$column-baseline.toml" ;;
      paper:d-efficient) echo "configs/backbone/imagenet-$column-efficient.toml" ;;
      paper:cosine) echo "configs/backbone/imagenet-$column-cosine.toml" ;;
      paper:smooth) echo "configs/backbone/imagenet-$column-cosine-smooth.toml" ;;
      paper:distill) echo "configs/backbone/imagenet-$column-cosine-smooth-distill.toml" ;;
      paper:mixup) echo "configs/backbone/imagenet-$column-cosine-smooth-mixup.toml" ;;
      paper:distill-mixup) echo "configs/backbone/imagenet-$column-cosine-smooth-distill-mixup.toml" ;;
      *) echo "configs/tables/$column/$1.toml" ;;
    esac
  elif [ "$profile" = paper ]; then
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
# The folder of a row of a column (ROW, or COLUMN/ROW), and of its teacher row: ResNet-50-D's
# teachers in the paper profile (the paper distils all three networks from one ResNet-152-D),
# the column's own in the others (a teacher sees the student's inputs, and Inception-V3's
# 75 px are not the 28 px the ResNet teachers learned).
row_dir() { if [ "${2:-resnet50d}" = resnet50d ]; then echo "$1"; else echo "$2/$1"; fi; }
teacher_dir() {  # ROW [COLUMN]
  local t; t=$(teacher_of "$1")
  [ -z "$t" ] || if [ "$profile" = paper ]; then echo "$t"; else row_dir "$t" "${2:-}"; fi
}

run_flags=(--device "$device")
[ "$nproc" -gt 1 ] && run_flags+=(--nproc "$nproc")

# The value KEY of [SECTION] that a recipe runs with: the last `--set SECTION.KEY=V` of the
# overrides that follow, else the recipe file's `KEY = V`, else DEFAULT.
recipe_value() {  # CONFIG SECTION KEY DEFAULT [OVERRIDES...]
  local file=$1 section=$2 key=$3 value=$4 v
  shift 4
  v=$(awk -v s="[$section]" -v k="$key" '/^\[/ { inside = ($1 == s) } inside && $1 == k && $2 == "=" { print $3 }' "$root/$file" | tail -n 1)
  [ -z "$v" ] || value=$v
  while [ $# -gt 0 ]; do
    if [ "$1" = --set ] && [[ "${2:-}" == "$section.$key="* ]]; then value=${2#*=}; fi
    shift
  done
  echo "$value"
}

# Precision. A backbone runs as its recipe says (the Fashion profiles' recipes leave it to the
# script: fp16 on CUDA for every row but b-standard, the paper's efficient setting). Detection
# and segmentation fine-tune every row in fp32, as GluonCV did for Tables 8 and 9. fp16 is
# CUDA's, so on a CPU a recipe that asks for it runs in fp32 (said once, below), not in the bf16
# `train.amp` would substitute.
asks_fp16() { case "$1" in true|fp16|'"fp16"') return 0 ;; *) return 1 ;; esac; }
backbone_precision_sets() {  # ROW CONFIG OVERRIDES...
  local row=$1 config=$2 amp; shift 2
  case "$device" in
    cuda*) [ "$profile" = paper ] || [ "$row" = b-standard ] || echo "--set train.amp=true" ;;
    *) amp=$(recipe_value "$config" train amp false "$@")
       ! asks_fp16 "$amp" || echo "--set train.amp=false" ;;
  esac
}
fine_tuning_precision_sets=(--set train.amp=false)

# Dry run: the recipe as it is, but DRY_STEPS optimiser steps (one short epoch, then the
# in-training validation and the checkpoints), a handful of validation images, and on a CPU
# a small batch without accumulation.
dry_images_backbone=8 dry_images_detection=2 dry_images_segmentation=1
dry_sets() {  # KIND CONFIG OVERRIDES...
  [ "$dry_run" = 1 ] || return 0
  local kind=$1 config=$2 batch accumulate images; shift 2
  # The Fashion profiles' batches are small already: only the paper's shrink, on a CPU.
  case "$device:$profile" in
    cuda*|*:demo|*:smoke|*:mini|*:ci) batch=$(recipe_value "$config" data batch_size 1 "$@")
           accumulate=$(recipe_value "$config" train accumulate 1 "$@") ;;
    *) accumulate=1
       # Segmentation's crops are the costliest; one detection image per step gave a
       # non-finite loss on the ci scenes (an FPN batch of 1), so detection keeps 2.
       if [ "$kind" = segmentation ]; then batch=1; else batch=2; fi
       echo "--set data.batch_size=$batch --set train.accumulate=1" ;;
  esac
  case "$kind" in
    backbone) images=$dry_images_backbone ;;
    detection) images=$dry_images_detection ;;
    segmentation) images=$dry_images_segmentation ;;
  esac
  echo "--max-iters $dry_steps --set train.eval_every_epochs=1" \
    "--set data.max_train_samples=$((dry_steps * batch * accumulate * nproc))" \
    "--set data.max_val_samples=$images"
}
dry_eval_flags() {  # KIND
  [ "$dry_run" = 1 ] || return 0
  case "$1" in
    backbone) echo "--max-samples $dry_images_backbone" ;;
    detection) echo "--max-samples $dry_images_detection" ;;
    segmentation) echo "--max-samples $dry_images_segmentation" ;;
  esac
}

# --- stages ----------------------------------------------------------------------------------
# A finished stage leaves ROW/STAGE.done (its wall time and command); a failed one leaves
# ROW/STAGE.failed (its log). Evaluation stages write their JSON to ROW/STAGE.json.
mkdir -p "$out"
# Finished stages are reused only by a run of the same schedule: OUT/schedule.txt records it,
# and a folder holding another (another profile, a dry run, an older version of a profile)
# is refused rather than mixed into new tables. A folder from before the record is reused
# with a warning.
schedule="profile $profile, dry run $dry_run ($dry_steps steps)
scenes: ${scene_args[*]:-}
backbones: ${backbone_sets[*]:-} | step rows: ${step_sets[*]:-} | teachers: ${teacher_sets[*]:-} | batch at most ${max_backbone_batch:-any}
detection: ${det_sets[*]:-}
segmentation: ${seg_sets[*]:-}
recipes: recorded by each stage (ROW/STAGE.done)"
if [ -f "$out/schedule.txt" ]; then
  [ "$(cat "$out/schedule.txt")" = "$schedule" ] \
    || die "$out holds stages of another schedule ($out/schedule.txt); remove the folder or choose another --out. This run's schedule:
$schedule"
else
  ! compgen -G "$out/*/*.done" > /dev/null \
    || echo "transfer_tables: $out records no schedule (an older run of this script): its finished stages are reused as they are" >&2
  printf '%s\n' "$schedule" > "$out/schedule.txt"
fi
quote() { printf '%q ' "$@"; }

# On a terminal, a running stage keeps one line up to date: the stage, its elapsed time, its
# own progress (a training stage's "iter I/TOTAL" from its log) and an estimate of what is left
# of the whole run: the running stage's rest (from its progress) plus every stage still to come,
# each as long as the same stage took in an earlier row of this run, else as long as this
# profile's reference run took it (`reference`, quiet 2-core CPU, docs/results.md). Logs and
# other outputs get the plain lines only.
live=0; [ -t 1 ] && live=1
declare -A took=() reference=()
plan=()  # "ROW STAGE" of every stage this run may start, in order (filled below)
mmss() { printf '%d:%02d' $(($1 / 60)) $(($1 % 60)); }
# A stage's timing key: its name, and for the other columns' rows COLUMN/NAME (an Inception-V3
# backbone takes longer than a ResNet one; the reference times are ResNet-50-D's).
timing_key() { case "$1" in */*) echo "${1%%/*}/$2" ;; *) echo "$2" ;; esac; }
# A reference time is scaled by how fast this machine has been so far: the time the stages
# timed in this run took against their reference times (the reference machine is not yours).
ran_seconds=0 ran_reference=0
seconds_of() {  # ROW STAGE: what it is expected to take, or nothing when no run has timed it
  local key; key=$(timing_key "$1" "$2")
  if [ -n "${took[$key]:-}" ]; then echo "${took[$key]}"
  elif [ -n "${reference[$key]:-}" ]; then
    if [ "$ran_reference" -gt 0 ]; then echo $(( reference[$key] * ran_seconds / ran_reference ))
    else echo "${reference[$key]}"; fi
  fi
}
live_line() {  # ROW STAGE LOG START_NS
  local row=$1 name=$2 log=$3 elapsed last i=0 t=0 shown="" rest="" later=0 untimed=0 entry s after=0
  elapsed=$(( ($(date +%s%N) - $4) / 1000000000 ))
  last=$(tail -n 4 "$log" 2>/dev/null | grep -o 'iter [0-9]*/[0-9]*' | tail -n 1)
  if [ -n "$last" ]; then
    i=${last#iter }; i=${i%/*}; t=${last#*/}
    shown=", iter $i/$t"
    [ "$i" -gt 0 ] && [ "$t" -ge "$i" ] && rest=$(( elapsed * (t - i) / i ))
  fi
  if [ -z "$rest" ]; then s=$(seconds_of "$row" "$name"); [ -n "$s" ] && rest=$(( s > elapsed ? s - elapsed : 0 )); fi
  [ -n "$rest" ] || untimed=1
  for entry in "${plan[@]}"; do
    if [ "$after" = 1 ]; then
      [ -f "$out/${entry% *}/${entry#* }.done" ] && continue
      s=$(seconds_of "${entry% *}" "${entry#* }")
      if [ -n "$s" ]; then later=$(( later + s )); else untimed=1; fi
    fi
    [ "$entry" = "$row $name" ] && after=1
  done
  local known=$(( ${rest:-0} + later )) left
  if [ "$untimed" = 0 ]; then left="about $(mmss "$known") left in all"
  elif [ "$known" -gt 0 ]; then left="at least $(mmss "$known") left in all"
  else left="time left known once a stage of each kind has run"; fi
  printf '\r\033[K[%s] %s: %s%s; %s' "$row" "$name" "$(mmss "$elapsed")" "$shown" "$left"
}
# Stopping the script stops the stage it runs (a command started in the background of a
# script would not get the terminal's Ctrl-C).
running=""
trap '[ -z "$running" ] || kill -TERM "$running" 2>/dev/null; exit 130' INT TERM

# The recipes (TOML files) a stage's command names, each with its content's sha256: a finished
# stage is reused only under the recipes it ran with, so that a recipe changed since (a
# `git pull`) is not mixed into new tables.
recipe_record() {
  local a
  for a in "$@"; do
    [[ "$a" == *.toml && -f "$a" ]] || continue
    printf 'recipe %s %s\n' "$a" "$(sha256sum < "$a" | cut -c1-16)"
  done
}
# The recipes of RECORD (recipe_record's lines) that DONE ran with another version of; none when
# DONE records no recipes (a stage finished before they were recorded).
changed_recipes() {  # DONE RECORD
  grep -q '^recipe ' "$1" || return 0
  local line
  while read -r line; do
    [ -z "$line" ] || grep -qxF -- "$line" "$1" || { line=${line#recipe }; printf '%s ' "${line% *}"; }
  done <<< "$2"
}

stage() {
  local row=$1 name=$2 json=$3; shift 3
  local dir=$out/$row; mkdir -p "$dir"
  local done=$dir/$name.done log=$dir/$name.log recipes changed
  recipes=$(recipe_record "$@")
  if [ -f "$done" ]; then
    changed=$(changed_recipes "$done" "$recipes")
    [ -z "$changed" ] || die "$row $name finished with another version of ${changed% } than this one ($done); remove $dir (or choose another --out) to train the row again with today's recipe"
    echo "[$row] $name: finished earlier, reused"; return 0
  fi
  rm -f "$dir/$name.failed"
  echo "[$row] $name: $(quote "$@")"
  local start rc=0; start=$(date +%s%N)
  if [ "$live" = 1 ]; then
    if [ -n "$json" ]; then "$@" > "$dir/$json.tmp" 2> "$log" &
    else "$@" > "$log" 2>&1 & fi
    running=$!
    while kill -0 "$running" 2>/dev/null; do live_line "$row" "$name" "$log" "$start"; sleep 1; done
    wait "$running" || rc=$?
    running=""
    printf '\r\033[K'
  elif [ -n "$json" ]; then "$@" > "$dir/$json.tmp" 2> "$log" || rc=$?
  else "$@" > "$log" 2>&1 || rc=$?; fi
  if [ "$rc" -ne 0 ]; then
    echo "$log" > "$dir/$name.failed"
    echo "[$row] $name FAILED (exit $rc): see $log" >&2
    tail -n 3 "$log" | sed "s#^#[$row]   #" >&2
    return 1
  fi
  [ -z "$json" ] || mv "$dir/$json.tmp" "$dir/$json"
  local ms=$(( ($(date +%s%N) - start) / 1000000 ))
  local key; key=$(timing_key "$row" "$name")
  if [ -z "${took[$key]:-}" ] && [ -n "${reference[$key]:-}" ] && [ "${reference[$key]}" -ge 10 ]; then
    ran_seconds=$(( ran_seconds + ms / 1000 )) ran_reference=$(( ran_reference + reference[$key] ))
  fi
  took[$key]=$((ms / 1000))
  { printf 'seconds %d.%03d\ncommand %s\n' $((ms / 1000)) $((ms % 1000)) "$(quote "$@")"
    [ -z "$recipes" ] || printf '%s\n' "$recipes"; } > "$done.tmp"
  mv "$done.tmp" "$done"
}
# A training stage continues an interrupted run of the same stage.
resume_flag() { [ -f "$1/state.safetensors" ] && echo --resume; }

train_backbone() {  # ROW [COLUMN]
  local row=$1 column=${2:-resnet50d} config sets=("${backbone_sets[@]}") dir run
  dir=$(row_dir "$row" "$column")
  run=$out/$dir/backbone
  config=$(backbone_config "$row" "$column")
  case "$row" in
    teacher*) sets=("${teacher_sets[@]}") ;;
    b-standard|d-efficient) sets+=("${step_sets[@]}") ;;
  esac
  # A profile too short for a recipe's large batch caps it (the learning rate is per 256
  # images, so it scales with the batch).
  if [ -n "$max_backbone_batch" ] && [ "$(recipe_value "$config" data batch_size 0 "${sets[@]}")" -gt "$max_backbone_batch" ]; then
    sets+=(--set "data.batch_size=$max_backbone_batch")
  fi
  # A dry run's few images replace the profile's evaluation limit.
  local evaluate=("${eval_flags[@]}")
  # shellcheck disable=SC2207
  [ "$dry_run" = 0 ] || evaluate=($(dry_eval_flags backbone))
  local teacher; teacher=$(teacher_dir "$row" "$column")
  if [ -n "$teacher" ]; then
    [ -f "$out/$teacher/backbone.done" ] || { echo "[$dir] skipped: its teacher ($teacher) did not finish" >&2; return 1; }
    sets+=(--set "distill.teacher=\"$out/$teacher/backbone/best.safetensors\"")
  fi
  # shellcheck disable=SC2046
  stage "$dir" backbone "" "$bin/backbone" train --config "$config" \
    --data "$cls_data" --out "$run" "${run_flags[@]}" "${sets[@]}" \
    $(backbone_precision_sets "$row" "$config" "${sets[@]}") $(dry_sets backbone "$config" "${sets[@]}") \
    $(resume_flag "$run") \
  && stage "$dir" backbone-eval backbone.json "$bin/backbone" eval --ckpt "$run/best.safetensors" \
    --data "$cls_data" --device "$device" "${evaluate[@]}" --json
}

transfer() {
  local row=$1 ckpt=$out/$1/backbone/best.safetensors det=$out/$1/detection seg=$out/$1/segmentation
  # shellcheck disable=SC2046
  stage "$row" detection "" "$bin/detect" finetune --backbone "$ckpt" --data "$det_data" \
    --config "$det_config" --out "$det" "${run_flags[@]}" "${det_sets[@]}" "${fine_tuning_precision_sets[@]}" \
    $(dry_sets detection "$det_config" "${det_sets[@]}") $(resume_flag "$det") \
  && stage "$row" detection-eval detection.json "$bin/detect" eval --ckpt "$det/best.safetensors" \
    --data "$det_data" --split test --metric "$det_metric" --device "$device" $(dry_eval_flags detection) --json
  # The final epoch's checkpoint, as GluonCV reports (best.safetensors stays in the folder).
  # shellcheck disable=SC2046
  stage "$row" segmentation "" "$bin/segment" finetune --backbone "$ckpt" --data "$seg_data" \
    --config "$seg_config" --out "$seg" "${run_flags[@]}" "${seg_sets[@]}" "${fine_tuning_precision_sets[@]}" \
    $(dry_sets segmentation "$seg_config" "${seg_sets[@]}") $(resume_flag "$seg") \
  && stage "$row" segmentation-eval segmentation.json "$bin/segment" eval --ckpt "$seg/last.safetensors" \
    --data "$seg_data" --split validation "${seg_eval_flags[@]}" --device "$device" $(dry_eval_flags segmentation) --json
}

# Detections drawn on the first few test scenes and segmentation overlays of the first few
# validation scenes, from the row's fine-tuned models (the Fashion-scene profiles).
pictures() {
  local row=$1 dir=$out/$1/pictures n=4 tmp f
  mkdir -p "$dir"
  tmp=$(mktemp -d "$dir/.predict.XXXXXX")
  # One process per model (loading it is most of a small picture's time), each image named
  # after its task afterwards. Boxes scored 0.3 and above are drawn: a detector trained for
  # minutes spreads its confidence over look-alike classes (shirt, T-shirt, coat), so at 0.5
  # a demo scene of four items showed two boxes (docs/results.md).
  local tests=() vals=() id
  while read -r id; do tests+=("$scenes/VOCdevkit/VOC2007/JPEGImages/$id.jpg"); done \
    < <(head -n "$n" "$scenes/VOCdevkit/VOC2007/ImageSets/Main/test.txt")
  mapfile -t vals < <(find "$scenes/ADEChallengeData2016/images/validation" -maxdepth 1 -name '*.jpg' | sort | head -n "$n")
  "$bin/detect" predict --ckpt "$out/$row/detection/best.safetensors" --images "${tests[@]}" \
    --out "$tmp/det" --min-score 0.3 --enlarge 3 --device "$device" || return 1
  "$bin/segment" predict --ckpt "$out/$row/segmentation/last.safetensors" --images "${vals[@]}" \
    --out "$tmp/mask" --overlay "$tmp/overlay" --enlarge 3 --device "$device" || return 1
  for f in "$tmp"/det/*.png; do mv "$f" "$dir/detections-$(basename "$f")"; done
  for f in "$tmp"/mask/*.png; do mv "$f" "$dir/mask-$(basename "$f")"; done
  for f in "$tmp"/overlay/*.png; do mv "$f" "$dir/overlay-$(basename "$f")"; done
  rm -rf "$tmp"
}

teachers=""
for r in $rows; do t=$(teacher_of "$r"); [ -z "$t" ] || [[ " $teachers " == *" $t "* ]] || teachers+=" $t"; done
# ResNet-50-D's rows and their teachers (which the other columns share in the paper profile),
# then each other column's teachers (the other profiles) and rows, backbones only.
resnet_teachers=$teachers resnet_rows=$rows
if [ "$run_resnet" = 0 ]; then
  resnet_rows=""
  [ "$profile" = paper ] && [ -n "$extra_columns" ] || resnet_teachers=""
fi
column_teachers=$teachers; [ "$profile" != paper ] || column_teachers=""
[ "$profile" = paper ] || [ "$run_resnet" = 0 ] || plan+=("data scenes")
for r in $resnet_teachers $resnet_rows; do
  plan+=("$r backbone" "$r backbone-eval")
  case " $teachers " in *" $r "*) continue ;; esac
  plan+=("$r detection" "$r detection-eval" "$r segmentation" "$r segmentation-eval")
  [ "$profile" = paper ] || plan+=("$r pictures")
done
for c in $extra_columns; do
  for r in $column_teachers $rows; do plan+=("$c/$r backbone" "$c/$r backbone-eval"); done
done
# The reference runs' stage times in seconds, from quiet 2-core AMD EPYCs: the demo profile's
# (each stage's own time; 2026-12-07, AVX-512) and the mini profile's rows (2026-12-06, avx2
# only; training and evaluation together, as docs/results.md lists them, split by a rough
# 90/10).
case "$profile" in
  demo) reference=([scenes]=1 [backbone]=27 [backbone-eval]=1 [detection]=337 [detection-eval]=6
                   [segmentation]=161 [segmentation-eval]=3 [pictures]=2) ;;
  mini) reference=([scenes]=20 [backbone]=160 [backbone-eval]=15 [detection]=320 [detection-eval]=30
                   [segmentation]=80 [segmentation-eval]=10 [pictures]=10) ;;
esac
started=$(date +%s)
if [ "$profile" != paper ] && [ "$run_resnet" = 1 ]; then
  stage data scenes "" "$bin/datasets" synth --out "$scenes" "${scene_args[@]}" --seed 0 --preview 8 \
    || die "could not write the Fashion scenes: see $out/data/scenes.log"
fi
notes=()
case "$device" in
  cuda*) ;;
  *) fp32=""
     recipes=()
     for r in $resnet_teachers $resnet_rows; do recipes+=("$(backbone_config "$r")"); done
     for col in $extra_columns; do
       for r in $column_teachers $rows; do recipes+=("$(backbone_config "$r" "$col")"); done
     done
     for c in "${recipes[@]}"; do
       ! asks_fp16 "$(recipe_value "$c" train amp false)" || [[ " $fp32 " == *" $c "* ]] || fp32+=" $c"
     done
     if [ -n "$fp32" ]; then
       notes+=(--note "On this CPU the backbone recipes that ask for fp16 ran in fp32 (fp16 is CUDA's):${fp32// /, }.")
       notes[1]=${notes[1]/:, /: }
       echo "transfer_tables: fp16 is CUDA's; on $device these recipes run in fp32:$fp32"
     fi ;;
esac
[ "$dry_run" = 0 ] || echo "transfer_tables: dry run: $dry_steps optimiser steps per training stage, evaluations on a few images; out: $out"
for t in $resnet_teachers; do train_backbone "$t" || true; done
for r in $resnet_rows; do
  if train_backbone "$r"; then transfer "$r" || true; fi
  if [ "$profile" != paper ] && [ -f "$out/$r/detection.done" ] && [ -f "$out/$r/segmentation.done" ]; then
    stage "$r" pictures "" pictures "$r" || true
  fi
done
for c in $extra_columns; do
  for r in $column_teachers $rows; do train_backbone "$r" "$c" || true; done
done

echo
echo "all stages done in $(( $(date +%s) - started )) s (stages reused from earlier runs count 0)"
dry_flag=()
[ "$dry_run" = 0 ] || dry_flag=(--dry-run)
"$bin/tables" --dir "$out" --profile "$profile" --rows "${rows// /,}" --columns "${columns// /,}" \
  "${dry_flag[@]}" "${notes[@]}" || exit 1

echo
echo "pictures"
echo "  the chart of the three tables:  $out/tables.png"
for r in $resnet_rows; do
  for f in backbone/curves.png detection/curves.png segmentation/curves.png; do
    [ -f "$out/$r/$f" ] && echo "  $r training curves:  $out/$r/$f"
  done
  [ -d "$out/$r/pictures" ] && echo "  $r detections and segmentation overlays:  $out/$r/pictures/"
done
for c in $extra_columns; do
  for r in $rows; do
    [ -f "$out/$c/$r/backbone/curves.png" ] && echo "  $c/$r training curves:  $out/$c/$r/backbone/curves.png"
  done
done
[ -f "${scenes:-/nonexistent}/preview.png" ] && echo "  the scenes with their boxes and masks:  $scenes/preview.png"
exit 0
