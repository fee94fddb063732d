# memstore's CLI on the device: init, two commits (float32, then bfloat16), eval, exports
# on the device and on the CPU, rebuilt twice: the tensors' hashes compared.
set -x
D=${1:-cuda}; export N=${2:-100}
M="python3 -m cli.main"
R=/tmp/smoke; rm -rf $R; mkdir -p $R
python3 - <<'PY'
import json, os
recs = json.load(open(os.environ["MEMSTORE_BENCH_DATA"] + "/counterfact-dev.json"))
n = int(os.environ["N"]); json.dump(recs[:n], open("/tmp/smoke/a.json", "w")); json.dump(recs[n:2 * n], open("/tmp/smoke/b.json", "w"))
PY
cd $R
$M init --device $D || exit 1
time $M commit a.json --device $D
time $M commit b.json --device $D --dtype bfloat16
$M log
$M eval a.json --device $D --json
X=/tmp/smokex; rm -rf $X; mkdir -p $X
$M export HEAD $X/x1 --device $D && $M export HEAD $X/x2 --device $D && $M export HEAD $X/x3
for x in x1 x2 x3; do sha256sum $X/$x/*.safetensors; done
$M verify $X/x1; $M verify $X/x3
$M fsck
