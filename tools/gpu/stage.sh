#!/usr/bin/env bash
# The full reproduction on a lent GPU in two device calls on one warm machine (issue: reproduce
# the whole paper on one GPU). CIFAR-10 travels packed (tools/gpu/pack_cifar10.py pack, here, first):
#   call 1, carry [".data/packed/a"]:  COB_PAPER_GIT_COMMIT=<commit> [LADDER_S=150] bash tools/gpu/stage.sh probe
#   call 2, carry [".data/packed/b", ".whl"]:  COB_PAPER_GIT_COMMIT=<commit> [REPRODUCE_ARGS="..."] bash tools/gpu/stage.sh main <budget s> [<limit s>]
#     (REPRODUCE_ARGS: more options of tools/gpu/reproduce.py, e.g. "--schedule-of full --seed-ids 1" adds seed 1 to the full run)
# <budget> and <limit> count from the command's start: the seconds spent unpacking come off both.
#   then, or instead of call 2 (carry [".data/packed/b"] if the data is not unpacked yet):
#                                      COB_PAPER_GIT_COMMIT=<commit> bash tools/gpu/stage.sh study <budget seconds>
#   on any call, no data carried (e.g. with the time a session has left after call 2, on the same warm machine):
#                                      COB_PAPER_GIT_COMMIT=<commit> [LADDER_RUNGS=eager,compiled,authors] bash tools/gpu/stage.sh ladder <seconds>
# Call 1 unpacks its half of the data while tools/gpu/probe.py times the engine; call 2 unpacks
# the rest, then tools/gpu/reproduce.py chooses the schedule and runs every experiment.
# What comes back under $OUT (8 files at most): logs, probe.json / schedule.json, the ladder's results/bench/*.json, and
# results.tar (every results file of the run, rewritten as each experiment ends).
set -u
: "${COB_PAPER_GIT_COMMIT:?set COB_PAPER_GIT_COMMIT to the commit this tree was copied from}"
export PYTHONPATH=. PYTHONUNBUFFERED=1 COB_PAPER_DATA=.data/cifar10 COB_PAPER_GIT_COMMIT
# wheels carried in .whl (torch-pruning, for the beyond experiment's toolkit arms: the machine has no network)
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=.:/tmp/site
fi
OUT="${OUT:-/tmp/cob-paper-out}"; mkdir -p "$OUT"
# the engine ladder (bench/train_throughput.py) within $1 seconds, written to folder $2 (emptied first), its rungs
# $LADDER_RUNGS (default: all): random images, since a call may not have CIFAR-10 (the cost of a step does not depend on
# the pixels); kept in .data too, since $OUT is emptied before each call and `main` chooses its engine among the rungs
# of the first call's ladder (.data/bench)
ladder() {
  rm -rf "$2"
  timeout "$1" python bench/train_throughput.py --full --synthetic ${LADDER_RUNGS:+--rungs "$LADDER_RUNGS"} --out "$2" 2>&1 | tee "$OUT/ladder.log"
  mkdir -p "$OUT/results/bench"
  cp "$2"/train_throughput-*.json "$OUT/results/bench/" 2>/dev/null || echo "the ladder measured no rung in $1 s" | tee -a "$OUT/ladder.log"
}
case "${1:-}" in
  probe)
    { nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
      python -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
      nproc; } > "$OUT/machine.txt" 2>&1
    python tools/gpu/pack_cifar10.py unpack > "$OUT/unpack-a.log" 2>&1 &
    python tools/gpu/probe.py --out .data/probe.json 2>&1 | tee "$OUT/probe.log"
    wait
    if [ -n "${LADDER_S:-}" ]; then ladder "$LADDER_S" .data/bench; fi
    cp .data/probe.json "$OUT/probe.json"
    cat "$OUT/machine.txt" "$OUT/unpack-a.log" ;;
  main)
    budget=${2:?give the budget in seconds}; limit=${3:-$budget}
    python tools/gpu/pack_cifar10.py unpack 2>&1 | tee "$OUT/unpack-b.log"
    (cd .data/cifar10 && sha256sum -c --quiet SHA256SUMS) || { echo "CIFAR-10 incomplete in .data/cifar10"; exit 1; }
    python tools/gpu/reproduce.py --probe .data/probe.json --ladder .data/bench/train_throughput-cuda.json \
      --budget "$((budget - SECONDS))" --limit "$((limit - SECONDS))" \
      --data .data/cifar10 --runs .data/runs --out "$OUT" ${REPRODUCE_ARGS:-} 2> "$OUT/progress.log" | tee "$OUT/reproduce.log" ;;
  study)
    budget=${2:?give the budget in seconds}
    (cd .data/cifar10 2>/dev/null && sha256sum -c --quiet SHA256SUMS) || python tools/gpu/pack_cifar10.py unpack 2>&1 | tee "$OUT/unpack-b.log"
    (cd .data/cifar10 && sha256sum -c --quiet SHA256SUMS) || { echo "CIFAR-10 incomplete in .data/cifar10"; exit 1; }
    python tools/gpu/study.py --probe .data/probe.json --ladder .data/bench/train_throughput-cuda.json --budget "$((budget - SECONDS))" \
      --data .data/cifar10 --runs .data/runs \
      --out "$OUT" 2> "$OUT/study-progress.log" | tee "$OUT/study.log" ;;
  ladder)
    ladder "${2:?give the seconds the ladder may take}" .data/ladder ;;     # not .data/bench: main's engine came from that
  *) echo "usage: bash tools/gpu/stage.sh probe | main <budget seconds> [<limit seconds>] | study <budget seconds> | ladder <seconds>"; exit 2 ;;
esac
