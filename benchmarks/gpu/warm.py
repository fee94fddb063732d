"""Device warm-up: dequantize SmolLM2 once, load it on the device, the default statistics."""
import sys
import time

sys.path[:0] = [".", "benchmarks"]
import torch

from memstore.editing import default_settings
from memstore.editing.statistics import cached_statistics
from memstore.models.hashing import model_hash
from memstore.models.loading import DEFAULT_MODEL, cache_dir, load_model

dev = sys.argv[1] if len(sys.argv) > 1 else "cuda"
t = time.perf_counter()
lm = load_model(DEFAULT_MODEL, device=dev)
print("loaded", round(time.perf_counter() - t, 1), "s on", lm.model.device, torch.__version__, flush=True)
s = default_settings(lm.model)
mid = model_hash(lm.model)
print("model hash", mid, "layers", s.layers, "λ", s.mom2_weight, flush=True)
cached_statistics(lm.model, lm.tokenizer, lm.adapter, s.layers, mid, cache_dir() / "stats",
                  s.stats_source, s.stats_tokens, s.seed)
print("stats", round(time.perf_counter() - t, 1), "s", flush=True)
