"""The scorer registry: a dict from name to a small `Scorer` object (no torch: the config validator reads it).

A scorer is one of four kinds, by where its numbers come from:

- ``batch``: computed batch by batch in the scoring pass by a component with a
  begin/add/finish shape (components.py). A plain function `fn(model, x, y, logits)`
  returning one float per sample (`loss`, `el2n`, a plugin's) is wrapped into one;
  `grad_norm` and `input_grad_norm` name a built-in component (`component`) that reads
  what the pass's backward gives, so their `fn` is None. The pass's other per-batch
  quantities (predictions, embeddings, gradient embeddings) are components too, in
  `COMPONENTS`, the registry by name that `register_component` adds to.
- ``random``: seeded uniform numbers, no model at all.
- ``training``: counted while the surrogate trains by a trainer observer: `observer`
  is a factory `observer(n, device)` of a `BatchObserver` with a `scores()` method
  (`forgetting`, `aum`, `tdds`, `dynamic_uncertainty`).
- ``embedding``: a function of surrogate 0's penultimate embeddings of the whole
  training set, `fn(model, embeddings, labels)` returning (N,) (`moderate`,
  `prototypes`, `cal`), computed right after that surrogate's scoring pass.

`average_inits` says whether the score is the mean over the K independently
initialised surrogates (EL2N per Paul et al. 2021, forgetting) or comes from the
first surrogate alone (every other scorer: one model's view of the sample).

`options` are the scorer's own settings, `[scoring.NAME]` tables in a config
(`window` of TDDS, `margin` of AUM, ...), each with its paper's default. Two are
the surrogate run's, not the function's (`SURROGATE_OPTIONS`): `inits`, this
score's K, and `epoch`, a surrogate epoch fixed for this score whatever the run's
score epochs; the others are passed to the observer or function as keywords.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ..errors import ConfigError
from ..options import Option, as_options, check_options, choice, describe_options, integer, number
from ..registry import MethodDoc, Ref, Registry, implementation

if TYPE_CHECKING:
    import torch
    from torch import nn

# fn(model, x, y, logits) -> per-sample tensor of shape (N,): x is the normalised batch in the
# model's layout, y the labels, logits the model's outputs on x (all detached, on the device).
# Built-ins are "module:function" references (`Ref`), so this registry imports no torch.
ScoreFn = Callable[["nn.Module", "torch.Tensor", "torch.Tensor", "torch.Tensor"], "torch.Tensor"]


@dataclass(frozen=True)
class Scorer:
    name: str
    description: str
    kind: Literal["batch", "random", "training", "embedding"] = "batch"
    fn: ScoreFn | None = None
    needs_param_grads: bool = False  # needs the per-sample gradient norm of all trainable parameters
    needs_input_grad: bool = False  # needs dL/dx of the normalised input
    average_inits: bool = False  # mean over the K surrogates, else from surrogate 0
    version: str = ""  # part of the cache key: bump it when a custom scorer's function changes
    observer: Callable[..., object] | None = None  # training kind: observer(n, device, **options) -> BatchObserver
    options: dict[str, Option] = field(default_factory=dict)  # name -> its default, help and check
    doc: MethodDoc = field(default_factory=MethodDoc)  # formula, paper, reference code, differences, pinning tests (docs/methods/)
    component: str = ""  # batch kind: the COMPONENTS entry that computes it; "" = its `fn`, wrapped

    @property
    def needs_surrogate(self) -> bool:
        return self.kind != "random"

    def resolve(self, options: dict[str, Any] | None = None) -> dict[str, Any]:
        """Every option of this scorer, the given ones checked and the rest at their defaults."""
        return check_scorer_options(self.name, options or {})

    def describe(self) -> dict[str, Any]:
        """Plain data for the CLI, forms and JSON."""
        return {"name": self.name, "kind": self.kind, "description": self.description,
                "average_inits": self.average_inits,
                "options": describe_options(self.options)}


SCORERS: Registry[Scorer] = Registry("scorer")

# name -> factory(**options) of a scoring-pass component: an object with `begin(n, dtype, device)`, `add(batch)`
# and `finish()`, and a `needs` set of what the pass must compute for it (components.py). Built-ins are `Ref`s.
COMPONENTS: Registry[Callable[..., Any]] = Registry("scoring component")
COMPONENT_STEPS = ("begin", "add", "finish")


def register_component(name: str, factory: Callable[..., Any] | str) -> Callable[..., Any]:
    """Add a scoring-pass component by name: `factory(**options)` makes one for a pass (a class, usually)."""
    if not callable(factory) and not isinstance(factory, str):
        raise ConfigError(f"component {name!r}: give a class (or factory) whose objects have begin, add and finish")
    COMPONENTS[name] = implementation(factory)
    return COMPONENTS[name]


def is_component(fn: Any) -> bool:
    """Whether `fn` makes components (a class with begin/add/finish) rather than being a score function."""
    return isinstance(fn, type) and all(callable(getattr(fn, step, None)) for step in COMPONENT_STEPS)


def register_scorer(name: str, fn: ScoreFn | type | str, description: str = "", *, average_inits: bool = False,
                    version: str = "", options: dict[str, Option | tuple[Any, str]] | None = None,
                    doc: MethodDoc | None = None) -> Scorer:
    """Add a scorer usable by name everywhere (`compute_scores`, the CLI, configs).

    `fn(model, x, y, logits, **options) -> (N,) tensor` is called once per batch of the
    scoring pass with detached tensors, the model in eval mode and its parameters
    frozen (grad mode is on, so `fn` may differentiate w.r.t. `x` on its own), and the
    scorer's resolved options as keywords. `fn` may instead be a component class
    (begin/add/finish, components.py), made with the options as keywords, for a score
    that needs more than one batch at a time; it is registered in COMPONENTS under
    `name`. With `average_inits` the score is the mean over the K surrogates, else it
    comes from surrogate 0. Cached scores are keyed by name, code, options and
    `version`: bump the version when the function's behaviour changes. `options`
    declare the scorer's own settings (`engine.options.Option`, or (default, help)
    pairs), set per run in a `[scoring.NAME]` table. Registering a name again replaces it.
    """
    if not callable(fn) and not isinstance(fn, str):
        raise ConfigError(f"scorer {name!r}: fn must be a function fn(model, x, y, logits) -> per-sample tensor")
    fn = implementation(fn)
    if not description and not isinstance(fn, Ref):
        description = (fn.__doc__ or "").strip().split("\n")[0]
    component = ""
    if is_component(fn):
        component = name
        register_component(name, fn)
    scorer = Scorer(name=name, description=description, kind="batch", fn=fn, average_inits=average_inits,
                    version=version, options=as_options(options), doc=doc or MethodDoc(), component=component)
    SCORERS[name] = scorer
    return scorer


SURROGATE_OPTIONS = ("inits", "epoch")  # read by the surrogate run, never passed to the scorer's function

_K_OPTIONS = {
    "inits": integer(None, "K, the surrogates averaged for this score; default: surrogate.inits (data_diet: 10)", 1),
    "epoch": integer(None, "surrogate epoch this score is taken at, whatever the run's score epochs; default: "
                     "theirs (0: at initialisation)", 0),
}
_WINDOW = integer(10, "epochs per sliding window", 2)

for _scorer in (
    Scorer("random", "seeded uniform numbers: the baseline", kind="random"),
    Scorer("loss", "per-sample cross-entropy of surrogate 0 (Jiang et al. 2019)", fn=Ref("engine.scoring.formulas:loss_score")),
    Scorer("grad_norm", "‖∇θ L(θ, x, y)‖₂ over all trainable parameters of surrogate 0 (GraNd), exact",
           needs_param_grads=True, component="param_grad_norm"),
    Scorer("input_grad_norm", "‖∂L/∂x‖₂ w.r.t. the normalised input of surrogate 0 (High-Influence)",
           needs_input_grad=True, component="input_grad_norm"),
    Scorer("el2n", "‖softmax(f(x)) − onehot(y)‖₂ averaged over the K surrogates (Paul et al. 2021)",
           fn=Ref("engine.scoring.formulas:el2n_score"), average_inits=True, options=_K_OPTIONS),
    Scorer("forgetting", "forgetting events while the K surrogates train, averaged over them (Toneva et al. "
           "2019); a sample never learned counts as its run's maximum + 1", kind="training", average_inits=True,
           observer=Ref("engine.scoring.forgetting:ForgettingCounter")),
    Scorer("aum", "−(assigned logit − largest other logit) averaged over surrogate 0's training epochs "
           "(AUM, Pleiss et al. 2020)", kind="training", observer=Ref("engine.scoring.training_dynamics:AUM"),
           options={"margin": choice("logit", 'on "logit"s (the paper) or "softmax" probabilities (the CCS '
                                     "repository)", ("logit", "softmax"))}),
    Scorer("aum_softmax", "AUM on softmax probabilities, the CCS repository's variant (Zheng et al. 2023)",
           kind="training", observer=Ref("engine.scoring.training_dynamics:aum_softmax")),
    Scorer("tdds", "temporal dual-depth score of surrogate 0's first `trajectory` epochs (Zhang et al. 2024)",
           kind="training", observer=Ref("engine.scoring.training_dynamics:TDDS"),
           options={"window": _WINDOW, "trajectory": integer(10, "epochs counted from the start, >= window", 2),
                    "decay": number(0.9, "weight decay over windows", 0, 1, low_open=True, high_open=True)}),
    Scorer("dynamic_uncertainty", "std of the target probability over sliding 10-epoch windows of surrogate 0's "
           "training, averaged (He et al. 2024)", kind="training",
           observer=Ref("engine.scoring.training_dynamics:DynamicUncertainty"), options={"window": _WINDOW}),
    Scorer("entropy", "entropy of softmax(f(x)) averaged over the K surrogates (Coleman et al. 2020)",
           fn=Ref("engine.scoring.uncertainty:entropy_score"), average_inits=True),
    Scorer("least_confidence", "1 − max softmax probability averaged over the K surrogates (Coleman et al. 2020)",
           fn=Ref("engine.scoring.uncertainty:least_confidence_score"), average_inits=True),
    Scorer("margin", "1 − (top-1 − top-2 softmax probability) averaged over the K surrogates (Coleman et al. 2020)",
           fn=Ref("engine.scoring.uncertainty:margin_score"), average_inits=True),
    Scorer("moderate", "distance of surrogate 0's embedding to its class's median embedding (Moderate-DS, "
           "Xia et al. 2023); pair with the moderate strategy", kind="embedding",
           fn=Ref("engine.scoring.embedding_scores:moderate_score")),
    Scorer("prototypes", "cosine distance to the nearest of 10 k-means centroids of its class in surrogate 0's "
           "embedding space (Sorscher et al. 2022)", kind="embedding",
           fn=Ref("engine.scoring.embedding_scores:prototypes_score"),
           options={"clusters": integer(10, "k-means centroids per class", 1)}),
    Scorer("cal", "mean symmetric KL between surrogate 0's prediction and its 10 nearest same-class neighbours' "
           "(CAL, Margatina et al. 2021, as DeepCore)", kind="embedding",
           fn=Ref("engine.scoring.embedding_scores:cal_score"),
           options={"neighbours": integer(10, "nearest same-class neighbours (DeepCore's k)", 1)}),
    Scorer("grand", "GraNd: exact ‖∇θ L‖₂ averaged over the K surrogates (Paul et al. 2021; use epoch 0, K = 10)",
           needs_param_grads=True, average_inits=True, options=_K_OPTIONS, component="param_grad_norm"),
):
    SCORERS[_scorer.name] = _scorer

for _name, _factory in (
    ("predictions", "Predictions"),  # argmax of the logits, always gathered
    ("param_grad_norm", "ParamGradNorm"),  # exact ‖∇θ L‖ per sample (grad_norm, grand)
    ("input_grad_norm", "InputGradNorm"),  # ‖∂L/∂x‖ per sample
    ("embeddings", "Embeddings"),  # penultimate features
    ("gradient_embeddings", "GradientEmbeddingsOf"),  # last-layer gradients (gradembed.py)
    ("function", "FunctionScore"),  # a plain fn(model, x, y, logits) scorer, wrapped
):
    COMPONENTS[_name] = Ref(f"engine.scoring.components:{_factory}")


def check_scorer(name: str) -> Scorer:
    """The registered scorer `name`, or UnknownNameError listing the known ones."""
    return SCORERS.check(name)


def check_scorer_options(name: str, options: Any) -> dict[str, Any]:
    """Every option of scorer `name`, checked; UnknownNameError for an unknown scorer, ConfigError naming the
    scorer and its options for a bad one."""
    if name not in SCORERS and not isinstance(options, dict):
        raise ConfigError(f"{name!r} is not a scorer; options go in a scorer's own table, "
                          f"e.g. [scoring.tdds] window = 5")
    resolved = check_options(f"scorer {name!r}", check_scorer(name).options, options)
    window, trajectory = resolved.get("window"), resolved.get("trajectory")
    if window is not None and trajectory is not None and window < 3:  # TDDS: window − 1 differences per window
        raise ConfigError(f"scorer {name!r}: window = {window} holds one KL difference, whose deviation from "
                          "its mean is always 0; use window >= 3")
    if window is not None and trajectory is not None and trajectory < window:
        raise ConfigError(f"scorer {name!r}: trajectory = {trajectory} is shorter than window = {window}; "
                          "use trajectory >= window")
    return resolved


def describe_scorers() -> list[dict[str, Any]]:
    """Every registered scorer as plain data, in registration order."""
    return [s.describe() for s in SCORERS.values()]


def resolve_scorers(names: Iterable[str] | str) -> list[Scorer]:
    """Scorers for a list (or a comma-separated string) of names, duplicates dropped, order kept."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    out: dict[str, Scorer] = {}
    for name in names:
        out.setdefault(name, check_scorer(name))
    if not out:
        raise ConfigError("no scorer asked for; name at least one, e.g. loss,grad_norm")
    return list(out.values())
