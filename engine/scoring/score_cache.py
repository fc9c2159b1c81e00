"""Where a surrogate's states, score arrays and training observers' values live in the cache, and their loads/saves.

Keys (store/cache.py hashes them) are made of everything that determines the
value: the data (content digest, name, subset), the model (name and the code of
its module), the training config, the surrogate's seed and the epoch. Score
arrays add the scorers' fingerprints (name, code, version, options) and which
extras the pass gathered; an observer's values add its code and options. So a
repeated call loads everything and trains nothing, a call with new scorers loads
the states and only rescores, and changed code or options never reuse an entry.

The observers' values sit in the cache folder "forgetting" and the forgetting
counter's values under the key they always had: forgetting was the first and
only observer when that folder was named. Kept so that caches made before stay
valid (no miss) and `prunelab cache clear --kind forgetting` still names them.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

from ..data.dataset import Dataset
from ..nets import MODELS
from ..registry import Ref
from ..store.cache import Cache, cache_key, code_digest
from .plan import ScoringPlan, SurrogateWork
from .registry import Scorer

STATES, SCORES = "surrogate", "scores"
OBSERVER_VALUES = "forgetting"  # the folder of every training observer's values (see above)


def fingerprint(s: Scorer, options: dict[str, Any] | None = None) -> str:
    """What of a scorer keys its cached scores: name, code, version and options."""
    fn = s.fn.load() if isinstance(s.fn, Ref) else s.fn
    where = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', '')}" if fn is not None else ""
    mark = f"{s.name}:{where}:{s.version}:{code_digest(fn)}"  # changed code under the same name: a new key
    return mark + (f":{json.dumps(options, sort_keys=True)}" if options else "")  # other options: another key


class ScoreCache:
    """The cache of one scoring call: what every surrogate's keys share."""

    def __init__(self, cache: Cache, dataset: Dataset, plan: ScoringPlan):
        self.cache, self.plan = cache, plan
        index = dataset.train_index if dataset.train_index is not None else np.arange(len(dataset))
        self.common = {"dataset": dataset.name, "digest": dataset.digest() if cache.enabled else "",
                       "subset": index, "model": plan.model, "train": plan.train_cfg,
                       "model_code": code_digest(MODELS.get(plan.model), whole_module=True)}

    def surrogate(self, work: SurrogateWork) -> SurrogateCache:
        return SurrogateCache(self.cache, {**self.common, "seed": work.seed}, self.plan, work)


class SurrogateCache:
    """The keys and the loads and saves of one surrogate."""

    def __init__(self, cache: Cache, base: dict[str, Any], plan: ScoringPlan, work: SurrogateWork):
        self.cache, self.base, self.plan, self.work = cache, base, plan, work

    # ------------------------------------------------------------ keys
    def state_key(self, t: int) -> str:
        return cache_key(**self.base, epoch=t, what="state")

    def scores_key(self, t: int) -> str:
        extras, gathered = t in self.work.extras_at, self.plan.extras
        return cache_key(**self.base, epoch=t, what="scores",
                         scorers=[fingerprint(s, self.plan.options[s.name]) for s in self.work.scored_at[t]],
                         extras=extras, embeddings=gathered.embeddings and extras,
                         **({"gradients": [gathered.gradient_dtype, gathered.gradient_mb]}
                            if gathered.gradients and extras else {}))

    def observer_key(self, s: Scorer, t: int) -> str:
        """A training scorer's values at epoch t: keyed by its observer's code and options."""
        if s.name == "forgetting":  # its key from before there were other observers
            return cache_key(**self.base, epoch=t, what="forgetting")
        return cache_key(**self.base, epoch=t, what="observer", scorer=s.name, version=s.version,
                         options=self.plan.options[s.name], code=code_digest(s.observer, whole_module=True))

    # ------------------------------------------------------------ loads and saves
    def load(self) -> dict[int, dict[str, np.ndarray]]:
        """Epoch -> the cached arrays (scores, predictions, extras, observers' values) of this surrogate.

        An entry that lacks one of the arrays it should hold is a miss (a damaged or foreign file)."""
        got: dict[int, dict[str, np.ndarray]] = {}
        passes, embeddings = self.work.passes, self.plan.extras.embeddings
        for t in self.plan.all_epochs:
            needed = ("predictions", *(s.name for s in self.work.scored_at[t]),
                      *(("embeddings",) if embeddings and t in self.work.extras_at else ()))
            arrays = self.cache.load_arrays(SCORES, self.scores_key(t), require=needed) if t in passes else None
            if arrays is not None:
                got[t] = arrays
            for s in self.work.observed_at[t]:
                values = self.cache.load_arrays(OBSERVER_VALUES, self.observer_key(s, t), require=(s.name,))
                if values is not None:
                    got.setdefault(t, {})[s.name] = values[s.name]
        return got

    def load_state(self, t: int) -> dict[str, torch.Tensor] | None:
        return self.cache.load_state(STATES, self.state_key(t))

    def save_state(self, t: int, state: dict[str, torch.Tensor]) -> None:
        self.cache.save_state(STATES, self.state_key(t), state)

    def save_scores(self, t: int, arrays: dict[str, np.ndarray]) -> None:
        self.cache.save_arrays(SCORES, self.scores_key(t), arrays)

    def save_observed(self, s: Scorer, t: int, values: np.ndarray) -> None:
        self.cache.save_arrays(OBSERVER_VALUES, self.observer_key(s, t), {s.name: values})
