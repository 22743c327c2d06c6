#!/usr/bin/env bash
# The GPU must-shows of issue 12, on a lent GPU machine, in two calls of under 10 minutes each (prepare the carried
# folder here first: bash benchmarks/gpu_prep.sh). A session is lent 15 device minutes in all (start-up included):
# part 1 first; part 2 where time is left. With the `device` tool:
#   run  command "bash benchmarks/gpu_check.sh 1"  carry ["device_carry"]  timeout_s 600
#        (environment, the GPU tests (torch detector, batched network, the fit on the GPU against the CPU), the landmark
#         network batched (crops/s, fp16), parity with MediaPipe on the GPU, the fit's time on each device,
#         end-to-end capture of single_hand.mp4 against MediaPipe's CPU path)
#   run  command "bash benchmarks/gpu_check.sh 2"  carry ["device_carry"]  timeout_s 600
#        (a 2-minute 4K clip: memory flat in clip length)
# Or, one machine start for all of it (the start costs minutes of the 15):
#   run  command "bash benchmarks/gpu_check.sh all"  carry ["device_carry"]  timeout_s 600
#        (the steps of both parts by priority -- tests, end-to-end capture, networks, the fit, parity, the long clip at
#         30 s only -- each skipped, with a line saying so, where its time limit no longer fits in 570 s)
# Each step's output is also written to $OUT/<step>.txt (the tool brings those files back).
set -uo pipefail
DEADLINE=$(( $(date +%s) + ${BUDGET_S:-570} ))  # "all": no step starts that could run past this
PART=${1:-1}
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  device_carry/whl/*.whl || { echo "installing the carried wheels failed"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 GLOG_minloglevel=2
export HANDCAP_DATA=$PWD/device_carry/data HANDCAP_CACHE=$PWD/build/gpu_cache

step() {  # step NAME SECONDS COMMAND...: run with a time limit, echo and keep its output
  local name=$1 limit=$2
  shift 2
  if [ "$PART" = all ] && [ $(( $(date +%s) + limit )) -gt "$DEADLINE" ]; then
    echo "=== $name: skipped, ${limit} s no longer fit ($(( DEADLINE - $(date +%s) )) s left)" | tee "$OUT/$name.txt"
    return
  fi
  echo "=== $name ($(date +%T), limit ${limit} s)"
  timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.txt"
  echo "=== $name: exit ${PIPESTATUS[0]} ($(date +%T))"
}

step env 60 bash -c 'nvidia-smi -L; nproc; command -v ffmpeg; python3 -c "import sys, torch, numpy, cv2, mediapipe; print(sys.version.split()[0], torch.__version__, torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else None, numpy.__version__, cv2.__version__, mediapipe.__version__)"; python3 -c "from core.hand.gen import ensure_open_model; ensure_open_model(); from core.detect import resolve_backend; print(\"auto ->\", resolve_backend(\"auto\"))"'
if [ "$PART" = all ]; then
  step tests 120 python3 -m pytest -q -p no:cacheprovider tests/gpu tests/test_torch_hands.py tests/test_hybrid.py
  step capture 150 python3 -m benchmarks.capture_speed --rounds 2 --workers auto --detector auto,hybrid
  step networks 75 python3 -m benchmarks.torch_hands --costs --device cuda --batches 1,64,256,1024,2048 --frames 120 \
    --videos single_hand.mp4,two_hands.mp4
  step fit 60 python3 -m benchmarks.fit_device --devices cpu,cuda --rounds 3 --videos single_hand.mp4 --end 300
  step parity 60 python3 -m benchmarks.torch_hands --device cuda --frames 120 --rounds 1 --skip-steps --skip-network \
    --videos single_hand.mp4,two_hands.mp4
  step long 150 python3 -m benchmarks.long_clip --size 3840x2160 --seconds 30 --detector auto --device auto
elif [ "$PART" = 1 ]; then
  step tests 120 python3 -m pytest -q -p no:cacheprovider tests/gpu tests/test_torch_hands.py tests/test_hybrid.py
  step networks 75 python3 -m benchmarks.torch_hands --costs --device cuda --batches 1,64,256,1024,2048 --frames 120 \
    --videos single_hand.mp4,two_hands.mp4
  step parity 75 python3 -m benchmarks.torch_hands --device cuda --frames 120 --rounds 1 --skip-steps --skip-network \
    --videos single_hand.mp4,two_hands.mp4
  step fit 75 python3 -m benchmarks.fit_device --devices cpu,cuda --rounds 3 --videos single_hand.mp4,two_hands.mp4 \
    --end 300
  step capture 150 python3 -m benchmarks.capture_speed --rounds 2 --workers auto --detector auto,hybrid
else
  step long 560 python3 -m benchmarks.long_clip --size 3840x2160 --seconds 30,120 --detector auto --device auto
fi
