#!/usr/bin/env bash
# The measurements of the GPU issue in one device call (about 8 minutes on an H100):
# training throughput (authors' style vs engine, with and without torch.compile), the statistics
# pass on 10,000 images, and the schedule calibration with its bf16/float32 A/B.
# Before it: carry CIFAR-10 with ../shared/tools/device-data (one part per call).
# Run on the device as:  COB_PAPER_GIT_COMMIT=<commit> bash bench/gpu_session.sh
# Results land under $OUT/results/ (commit them as they come back) and logs under $OUT/.
set -u
export PYTHONPATH=. COB_PAPER_DATA="${COB_PAPER_DATA:-.data/cifar10}"
OUT="${OUT:-/tmp/cob-paper-out}"; mkdir -p "$OUT"
(cd "$COB_PAPER_DATA" && sha256sum -c --quiet SHA256SUMS) || { echo "CIFAR-10 incomplete in $COB_PAPER_DATA"; exit 1; }
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
python -c "import torch; print(torch.__version__, torch.cuda.get_device_name())" > "$OUT/torch.txt" 2>&1
timeout 170 python bench/train_throughput.py --full --out "$OUT/results/bench" > "$OUT/throughput.log" 2>&1
timeout 80 python bench/stats_memory.py --images 10000 --device cuda --out "$OUT/results/bench" > "$OUT/stats.log" 2>&1
timeout 300 python bench/calibrate_schedule.py --epochs 40 --ab-epochs 5 --out "$OUT/results/calibration" > "$OUT/calibrate.log" 2>&1
tail -n 5 "$OUT"/*.log
