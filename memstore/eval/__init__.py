"""Evaluation: readers for facts files and benchmarks, batched scoring, metrics."""
from .data import (
    EvalRecord,
    ZsreRecord,
    read_counterfact,
    read_counterfact_records,
    read_requests_file,
    read_zsre,
)
from .generation import generate, greedy_generate, n_gram_entropy
from .metrics import counterfact_metrics, generation_entropy, zsre_metrics
from .scoring import TargetScores, score_targets, target_nll, top1_accuracy

__all__ = [
    "EvalRecord",
    "TargetScores",
    "ZsreRecord",
    "counterfact_metrics",
    "generate",
    "generation_entropy",
    "greedy_generate",
    "n_gram_entropy",
    "read_counterfact",
    "read_counterfact_records",
    "read_requests_file",
    "read_zsre",
    "score_targets",
    "target_nll",
    "top1_accuracy",
    "zsre_metrics",
]
