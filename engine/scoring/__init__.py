"""Per-sample scores: the scorer registry, the exact batched scoring pass and surrogate runs.

- `SCORERS`, `register_scorer`, `check_scorer`: the registry (registry.py).
- `score_model`: every per-model score of one model in one pass over the data (batch.py),
  with exact per-sample gradient norms (persample.py; closed forms per layer family in
  linear.py, conv.py, norm.py, and a torch.func fallback in generic.py).
- `compute_scores`: train K surrogates, score at checkpoint epochs, cache (surrogate.py).
- `ForgettingCounter`: the trainer observer behind `forgetting` (forgetting.py).
"""
from .registry import SCORERS, Scorer, ScoreFn, check_scorer, register_scorer, resolve_scorers
from .batch import ModelScores, score_model
from .forgetting import ForgettingCounter
from .persample import PerSampleGradNorms, frozen_params
from .surrogate import ScoreResult, compute_scores, random_scores, surrogate_seed

__all__ = ["SCORERS", "Scorer", "ScoreFn", "check_scorer", "register_scorer", "resolve_scorers", "ModelScores",
           "score_model", "ForgettingCounter", "PerSampleGradNorms", "frozen_params", "ScoreResult",
           "compute_scores", "random_scores", "surrogate_seed"]
