"""Per-sample scores: the scorer registry (`registry.py`, no torch), closed-form batch scores (`formulas.py`),
the one batched pass (`batch.py`), exact gradient norms per layer family (`gradnorm/`), forgetting counts
(`forgetting.py`) and K surrogates with checkpoints and the cache (`surrogate.py`).

This package imports nothing, so the config validator can read the registry without loading torch.
"""
