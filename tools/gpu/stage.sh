#!/usr/bin/env bash
# The full reproduction on a lent GPU in two device calls on one warm machine (issue: reproduce
# the whole paper on one GPU). CIFAR-10 travels packed (tools/gpu/pack_cifar10.py pack, here, first); run
# tools/gpu/preflight.sh here before the loan: it checks the commit and the sizes, and prints the calls.
#   call 1, carry [".data/packed/a"]:  COB_PAPER_GIT_COMMIT=<commit> [LADDER_S=150] bash tools/gpu/stage.sh probe
#   call 2, carry [".data/packed/b", ".whl"]:  COB_PAPER_GIT_COMMIT=<commit> [REPRODUCE_ARGS="..."] bash tools/gpu/stage.sh main <budget s> [<limit s>]
#     (REPRODUCE_ARGS: more options of tools/gpu/reproduce.py, e.g. "--schedule-of full --seed-ids 1" adds seed 1 to the full run)
# <budget> and <limit> count from the command's start: the seconds spent unpacking come off both.
#   then, or instead of call 2 (carry [".data/packed/b"] if the data is not unpacked yet):
#                                      COB_PAPER_GIT_COMMIT=<commit> [STUDY_ARGS="..."] bash tools/gpu/stage.sh study <budget seconds>
#     (STUDY_ARGS: more options of tools/gpu/study.py, e.g. "--epochs 15" keeps the epochs of an earlier command)
#   on any call, no data carried (e.g. with the time a session has left after call 2, on the same warm machine):
#                                      COB_PAPER_GIT_COMMIT=<commit> [LADDER_RUNGS=eager,authors,fused] bash tools/gpu/stage.sh ladder <seconds>
# Call 1 unpacks its half of the data while tools/gpu/probe.py times the engine; call 2 unpacks
# the rest, then tools/gpu/reproduce.py chooses the schedule and runs every experiment.
# What comes back under $OUT (8 files at most): logs, probe.json / schedule.json, the ladder's results/bench/*.json, and
# results.tar (every results file of the run, rewritten as each experiment ends). Each file is written there as soon as
# it exists, so a command the device stops at its limit still returns what was finished. The exit code is the failed
# step's, and a failed step's log of errors ends the output.
set -u -o pipefail
: "${COB_PAPER_GIT_COMMIT:?set COB_PAPER_GIT_COMMIT to the commit this tree was copied from}"
# the label must be the code that runs: checked where the checkout's .git is (a clone here); the device's copy of the
# tree arrives without it, so tools/gpu/preflight.sh checks the same here before the loan
if [ -e .git ]; then
  head=$(git rev-parse HEAD)
  [ "$(git rev-parse -q --verify "$COB_PAPER_GIT_COMMIT^{commit}")" = "$head" ] ||
    { echo "COB_PAPER_GIT_COMMIT=$COB_PAPER_GIT_COMMIT is not this checkout's HEAD ($head): label the results with the code that runs"; exit 2; }
  git diff --quiet HEAD || { echo "tracked files differ from HEAD ($head): commit them first, or the results' label is not their code"; exit 2; }
fi
export PYTHONPATH=. PYTHONUNBUFFERED=1 COB_PAPER_DATA=.data/cifar10 COB_PAPER_GIT_COMMIT
# wheels carried in .whl (torch-pruning, for the beyond experiment's toolkit arms: the machine has no network)
# (installed once per machine: a later call on it finds them in /tmp/site)
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
if [ -d /tmp/site ]; then export PYTHONPATH=.:/tmp/site; fi
OUT="${OUT:-/tmp/cob-paper-out}"; mkdir -p "$OUT" .data
# a step that failed (exit code $3, else $? on entry): that exit code, and the end of $2, where its errors (tracebacks) went
failed() { local rc=${3:-$?}; echo "$1 failed (exit $rc); the end of $2:"; tail -n 30 "$2"; exit "$rc"; }
data_ready() { (cd .data/cifar10 2>/dev/null && sha256sum -c --quiet SHA256SUMS >/dev/null 2>&1); }
# the part of CIFAR-10 carried in .data/packed, unless all of it is unpacked already (an earlier call on this machine)
unpack_rest() {
  data_ready && return
  python tools/gpu/pack_cifar10.py unpack 2>&1 | tee "$OUT/unpack-b.log" || failed "unpacking" "$OUT/unpack-b.log"
  data_ready || { echo "CIFAR-10 incomplete in .data/cifar10: carry .data/packed/b (and a, on a fresh machine)"; exit 1; }
}
# the engine ladder (bench/train_throughput.py) within $1 seconds, its rungs $LADDER_RUNGS (default: all), written
# straight to $OUT/results/bench (rewritten after each rung: a command stopped by the device keeps every finished
# rung), then copied to folder $2 for later calls on this machine (`main` chooses its engine among the rungs of the
# first call's ladder, .data/bench); random images, since a call may not have CIFAR-10 (the cost of a step does not
# depend on the pixels)
ladder() {
  local rc
  timeout "$1" python bench/train_throughput.py --full --synthetic ${LADDER_RUNGS:+--rungs "$LADDER_RUNGS"} \
    --out "$OUT/results/bench" 2>&1 | tee "$OUT/ladder.log"
  rc=$?
  if [ "$rc" = 124 ]; then echo "the ladder reached its $1 s; the rungs it finished are in results/bench" | tee -a "$OUT/ladder.log"; rc=0; fi
  rm -rf "$2"; mkdir -p "$2"
  cp "$OUT"/results/bench/train_throughput-*.json "$2/" 2>/dev/null || echo "the ladder measured no rung in $1 s" | tee -a "$OUT/ladder.log"
  [ "$rc" = 0 ] || failed "the ladder" "$OUT/ladder.log" "$rc"
}
case "${1:-}" in
  probe)
    { nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
      python -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
      nproc; } > "$OUT/machine.txt" 2>&1
    python tools/gpu/pack_cifar10.py unpack > "$OUT/unpack-a.log" 2>&1 &
    unpacking=$!
    python tools/gpu/probe.py --out "$OUT/probe.json" 2>&1 | tee "$OUT/probe.log" || failed "the probe" "$OUT/probe.log"
    cp "$OUT/probe.json" .data/probe.json        # where main and study read it
    wait "$unpacking" || failed "unpacking part a" "$OUT/unpack-a.log"
    if [ -n "${LADDER_S:-}" ]; then ladder "$LADDER_S" .data/bench; fi
    cat "$OUT/machine.txt" "$OUT/unpack-a.log"
    # the line to read before call 2: without the fused unit, training is eager, and the 100-epoch seed does not fit a command
    python -c "import json; p = json.load(open('.data/probe.json')); print('fused unit: checked and timed (tsra_fused in probe.json)' if 'tsra_fused' in p else 'fused unit: NOT timed (its check: ' + json.dumps(p.get('fused_check'))[:300] + '); eager training: do not send call 2 as planned')" ;;
  main)
    budget=${2:?give the budget in seconds}; limit=${3:-$budget}
    unpack_rest
    python tools/gpu/reproduce.py --probe .data/probe.json --ladder .data/bench/train_throughput-cuda.json \
      --budget "$((budget - SECONDS))" --limit "$((limit - SECONDS))" \
      --data .data/cifar10 --runs .data/runs --out "$OUT" ${REPRODUCE_ARGS:-} 2> "$OUT/progress.log" | tee "$OUT/reproduce.log" ||
      failed "reproduce.py" "$OUT/progress.log" ;;
  study)
    budget=${2:?give the budget in seconds}
    unpack_rest
    python tools/gpu/study.py --probe .data/probe.json --ladder .data/bench/train_throughput-cuda.json --budget "$((budget - SECONDS))" \
      --data .data/cifar10 --runs .data/runs --out "$OUT" ${STUDY_ARGS:-} 2> "$OUT/study-progress.log" | tee "$OUT/study.log" ||
      failed "study.py" "$OUT/study-progress.log" ;;
  ladder)
    ladder "${2:?give the seconds the ladder may take}" .data/ladder ;;     # not .data/bench: main's engine came from that
  *) echo "usage: bash tools/gpu/stage.sh probe | main <budget seconds> [<limit seconds>] | study <budget seconds> | ladder <seconds>"; exit 2 ;;
esac
