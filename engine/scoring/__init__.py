"""Per-sample scores: the scorer registry (`registry.py`, no torch), closed-form batch scores (`formulas.py`),
the pass's components (`components.py`: every per-batch quantity in one begin/add/finish shape), the one batched
pass (`batch.py`), exact gradient norms per layer family (`gradnorm/`), training observers (`forgetting.py`,
`training_dynamics.py`), and the surrogate run as parts: its plan (`plan.py`), its cache (`score_cache.py`) and
`compute_scores` composing them with K surrogates (`surrogate.py`).

This package imports nothing, so the config validator can read the registry without loading torch.
"""
