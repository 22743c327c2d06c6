#!/usr/bin/env bash
# Prepares device_carry/ (git-ignored) for benchmarks/gpu_check.sh, the GPU must-shows of issue 12 on a lent GPU
# machine (the `device` tool: python3 3.12 with a CUDA torch, OpenCV, no network, ../shared not there).
# Holds: MediaPipe 0.10.21's wheel for Python 3.12 (the models, and MediaPipe itself for the CPU baselines) with
# the numpy < 2 and protobuf < 5 it was built for, and the shared data the checks read (two videos, 24 crops). ~55 MB of the 64 MiB
# a call may carry. Run here:  bash benchmarks/gpu_prep.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${HANDCAP_DATA:-../shared/data}
rm -rf device_carry
mkdir -p device_carry/whl device_carry/data/video
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d device_carry/whl mediapipe==0.10.21 numpy==1.26.4 protobuf==4.25.8
cp "$DATA/README.md" device_carry/data/
cp "$DATA/video/single_hand.mp4" "$DATA/video/two_hands.mp4" device_carry/data/video/
mkdir -p device_carry/data/real_world_testset_dev/images  # the 24 crops tests/test_hybrid.py reads
ls "$DATA/real_world_testset_dev/images" | sort | head -24 | while read -r f; do
  cp "$DATA/real_world_testset_dev/images/$f" device_carry/data/real_world_testset_dev/images/
done
du -sh device_carry
echo "then: device run, command 'bash benchmarks/gpu_check.sh 1' (and then '... 2'), carry [\"device_carry\"], timeout_s 600"
