"""The scorer registry: a dict from name to a small `Scorer` object (no torch: the config validator reads it).

A scorer is one of five kinds, by where its numbers come from:

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
  (`forgetting`, `aum`, `tdds`, `dynamic_uncertainty`), or of a trainer hook with one
  that runs its own passes at the surrogate's checkpoints (`tracin`,
  `gradient_alignment`, `moso`: influence.py).
- ``embedding``: a function of surrogate 0's penultimate embeddings of the whole
  training set, `fn(model, embeddings, labels)` returning (N,) (`moderate`,
  `prototypes`, `cal`), computed right after that surrogate's scoring pass.
- ``file``: read from a file another tool wrote (`file:PATH[#KEY]`, or a name given by
  `register_file_scores`; external.py), no surrogate at all.

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
from ..options import Option, as_options, check_options, choice, describe_options, flag, integer, number
from ..registry import MethodDoc, Ref, Registry, implementation
from .external import FILE_PREFIX, check_plain_name, file_source, parse_spec, scorer_fields, stamp

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
    kind: Literal["batch", "random", "training", "embedding", "file"] = "batch"
    fn: ScoreFn | None = None
    needs_param_grads: bool = False  # needs per-sample gradients of all trainable parameters (norms, inner products)
    needs_input_grad: bool = False  # needs dL/dx of the normalised input
    average_inits: bool = False  # mean over the K surrogates, else from surrogate 0
    version: str = ""  # part of the cache key: bump it when a custom scorer's function changes
    observer: Callable[..., object] | None = None  # training kind: observer(n, device, **options) -> BatchObserver
    options: dict[str, Option] = field(default_factory=dict)  # name -> its default, help and check
    doc: MethodDoc = field(default_factory=MethodDoc)  # formula, paper, reference code, differences, pinning tests (docs/methods/)
    component: str = ""  # batch kind: the COMPONENTS entry that computes it; "" = its `fn`, wrapped
    source: Any = None  # file kind: where its values are (external.FileSource)

    @property
    def needs_surrogate(self) -> bool:
        return self.kind not in ("random", "file")

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
_CHECKPOINTS = {  # the checkpoint scores' (influence.py): which checkpoints, weighted how
    "every": integer(1, "a checkpoint every this many epochs: epochs every, 2·every, … up to the score epoch", 1),
    "last": integer(0, "only the last this many of those checkpoints; 0: all of them", 0),
    "lr_weight": flag(True, "weight each checkpoint by its epoch's mean learning rate η_c; false: weight 1"),
    "epoch": _K_OPTIONS["epoch"],
}

for _scorer in (
    Scorer("random", "seeded uniform numbers: the baseline", kind="random",
           doc=MethodDoc(
               formula=("s_i ~ U(0, 1), drawn from a generator seeded by the trial's seed (each seed of a sweep "
                        "draws its own)"),
               differences=("No reference code: the baseline every pruning paper compares with.",),
               tests=(
                   "tests/engine/scoring/test_reference_scores.py::test_random_draws_numpys_generator_seeded_by_the_trial",
                   "tests/engine/scoring/test_scoring.py::test_random_is_reproducible_per_seed",
               ))),
    Scorer("loss", "per-sample cross-entropy of surrogate 0 (Jiang et al. 2019)", fn=Ref("engine.scoring.formulas:loss_score"),
           doc=MethodDoc(
               formula=("ℓ_i = −log softmax(f_θ(x_i))_{y_i}, the cross-entropy of surrogate 0 at the score epoch "
                        "(eval mode, un-augmented input)"),
               paper="jiang2019", code="angelajiang/SelectiveBackprop: lib/calculators.py",
               differences=(
                   ("The reference uses the loss online, to choose which samples of each drawn batch to "
                    "backpropagate (the online top-k page); here it is also a static score of a trained surrogate, "
                    "the seed study's Loss."),
               ),
               tests=(
                   "tests/engine/scoring/test_reference_scores.py::test_loss_and_el2n_follow_their_formulas_in_float64",
                   "tests/engine/scoring/test_scoring.py::test_loss_el2n_predictions_and_embeddings_follow_their_formulas",
                   "tests/engine/scoring/test_scoring.py::test_float32_scores_match_float64_closely",
               ))),
    Scorer("grad_norm", "‖∇θ L(θ, x, y)‖₂ over all trainable parameters of surrogate 0, exact (the seed study's "
           "Loss-Grad; GraNd, the mean over K inits, is `grand`)",
           needs_param_grads=True, component="param_grad_norm",
           doc=MethodDoc(
               formula=("‖∇_θ ℓ(f_θ(x_i), y_i)‖₂ over every trainable parameter of surrogate 0 at the score epoch "
                        "(BatchNorm in eval mode), exact: a closed form per layer (Linear ‖a‖²‖g‖² + ‖g‖²; Conv by "
                        "per-sample patch products or the Gram form, whichever is cheaper; BatchNorm-eval per "
                        "channel; LayerNorm, GroupNorm, RMSNorm) and torch.func for any other layer"),
               paper="paul2021", code="mansheej/data_diet: data_diet/scores.py",
               differences=(
                   ("Surrogate 0's norm alone at the run's score epoch (the seed study's Loss-Grad), not GraNd: "
                    "GraNd as the paper defines it, the mean over K = 10 initialisations at epoch 0, is the `grand` "
                    "scorer, which averages this same exact norm over K surrogates."),
               ),
               tests=(
                   "tests/engine/scoring/test_scoring.py::test_grad_norms_match_per_sample_loop",
                   "tests/engine/scoring/test_scoring.py::test_grad_norms_match_on_resnet18_with_batchnorm_in_eval_mode",
                   "tests/engine/scoring/test_scoring.py::test_every_layer_path_is_exact_in_both_forms_and_in_chunks",
                   "tests/engine/scoring/test_scoring.py::test_float32_scores_match_float64_closely",
               ))),
    Scorer("input_grad_norm", "‖∂L/∂x‖₂ w.r.t. the normalised input of surrogate 0 (High-Influence)",
           needs_input_grad=True, component="input_grad_norm",
           doc=MethodDoc(
               formula=("‖∂ℓ(f_θ(x_i), y_i)/∂x_i‖₂ with respect to the normalised input the model sees, surrogate 0 "
                        "at the score epoch (eval mode)"),
               differences=(
                   "No paper or reference code: one of the seed study's scores.",
                   ("float32 and float64 differ by up to 0.94 % at initialisation and 1.29 % after 6 steps on 10 000"
                    " MNIST digits (`cnn`): max-pool windows tie on the flat background and each precision's kernel "
                    "sends a tie's gradient to a different pixel (both valid subgradients, each matching its own "
                    "per-sample loop). After 200 steps the confidently classified samples' tiny norms lose their "
                    "digits in float32 (up to 86 % relative; 0.12 % above the median score). Exact in float64; "
                    "measured with the command in docs/guide/scoring.md#precision."),
               ),
               tests=(
                   "tests/engine/scoring/test_scoring.py::test_grad_norms_match_per_sample_loop",
                   ("tests/engine/scoring/test_reference_scores.py::"
                    "test_input_grad_norm_in_float32_stays_within_the_stated_bound_of_float64"),
               ))),
    Scorer("el2n", "‖softmax(f(x)) − onehot(y)‖₂ averaged over the K surrogates (Paul et al. 2021)",
           fn=Ref("engine.scoring.formulas:el2n_score"), average_inits=True, options=_K_OPTIONS,
           doc=MethodDoc(
               formula=("(1/K) Σ_k ‖softmax(f_{θ_k}(x_i)) − onehot(y_i)‖₂ over surrogates k = 0..K−1 (K: option "
                        "`inits`, default surrogate.inits) at the score epoch (option `epoch`, default the run's)"),
               paper="paul2021", code="mansheej/data_diet: data_diet/scores.py",
               differences=(
                   ("K and the epoch default to the run's (surrogate.inits is 1 in configs; the run's score epochs),"
                    " not the paper's K = 10 at epoch 20 of a 200-epoch schedule: set `[scoring.el2n] inits = 10, "
                    "epoch = 20` for the paper's setting."),
               ),
               tests=(
                   "tests/engine/scoring/test_reference_scores.py::test_loss_and_el2n_follow_their_formulas_in_float64",
                   "tests/engine/scoring/test_scoring.py::test_el2n_averages_over_k_surrogates",
                   ("tests/engine/scoring/test_scorer_options.py::"
                    "test_el2n_inits_and_epoch_options_pick_the_surrogates_and_the_checkpoint"),
               ))),
    Scorer("forgetting", "forgetting events while the K surrogates train, averaged over them (Toneva et al. "
           "2019); a sample never learned counts as its run's maximum + 1", kind="training", average_inits=True,
           observer=Ref("engine.scoring.forgetting:ForgettingCounter"),
           options={"never_learned": choice("max_plus_one", 'a sample never classified correctly counts "max_plus_one"'
                                             " (its surrogate's largest count + 1: the paper's unforgettable-at-"
                                             'infinity, finite) or "zero" (DeepCore)', ("max_plus_one", "zero"))},
           doc=MethodDoc(
               formula=("(1/K) Σ_k #{t : i correct at its (t−1)-th and wrong at its t-th minibatch while surrogate k"
                        " trains}, judged on the trainer's own logits (train mode, augmented input, before the "
                        "update); a sample never classified correctly counts its surrogate's maximum + 1 (option "
                        '`never_learned = "zero"`: 0, as DeepCore)'),
               paper="toneva2019", code="mtoneva/example_forgetting: run_cifar.py",
               differences=(
                   ("Never-learned samples count the run's maximum + 1 by default, a finite stand-in for the paper's "
                    "'infinitely forgettable' that keeps the order and can be averaged over K surrogates; DeepCore "
                    "(PatrickZH/DeepCore deepcore/methods/forgetting.py) leaves them at 0, where they rank with the "
                    'never-forgotten: `[scoring.forgetting] never_learned = "zero"` gives DeepCore\'s numbers.'),
                   ("DeepCore with its default `balance = True` keeps the most-forgotten of each class: pair with "
                    "`class_balanced` (order hardest) for its picks (its per-class quota is round(f·n_c), here "
                    "⌊f·n_c⌋ plus largest remainders: at most one sample apart per class)."),
               ),
               tests=(
                   "tests/engine/scoring/test_scoring.py::test_forgetting_counts_match_a_recount_of_the_recorded_sequence",
                   ("tests/engine/scoring/test_reference_scores.py::"
                    "test_forgetting_never_learned_option_leaves_them_at_zero_as_deepcore"),
               ))),
    Scorer("aum", "−(assigned logit − largest other logit) averaged over surrogate 0's training epochs "
           "(AUM, Pleiss et al. 2020)", kind="training", observer=Ref("engine.scoring.training_dynamics:AUM"),
           options={"margin": choice("logit", 'on "logit"s (the paper) or "softmax" probabilities (the CCS '
                                     "repository)", ("logit", "softmax"))},
           doc=MethodDoc(
               formula=("−(1/T) Σ_t [z_{y_i}(x_i) − max_{c≠y_i} z_c(x_i)] over the T epochs of surrogate 0 up to the"
                        " score epoch, z the logits of the trainer's own minibatch forward (train mode, augmented, "
                        'before the update); option margin = "softmax" takes the margin on probabilities'),
               paper="pleiss2020", code="asappresearch/aum: aum/aum.py",
               differences=(
                   "Negated, so that higher = harder (the paper flags low AUM as likely mislabelled).",
                   ("No threshold samples: the paper's extra fake class picks a cut-off, which the strategies here "
                    "make by budget."),
               ),
               tests=(
                   "tests/engine/scoring/test_field_scores.py::test_aum_matches_the_aum_package",
                   ("tests/engine/scoring/test_field_scores.py::"
                    "test_compute_scores_gathers_observers_during_surrogate_training_and_caches"),
               ))),
    Scorer("aum_softmax", "AUM on softmax probabilities, the CCS repository's variant (Zheng et al. 2023)",
           kind="training", observer=Ref("engine.scoring.training_dynamics:aum_softmax"),
           doc=MethodDoc(
               formula=("−(1/T) Σ_t [p_{y_i} − max_{c≠y_i} p_c], p = softmax of surrogate 0's training-minibatch "
                        'logits (`aum` with margin = "softmax")'),
               paper="zheng2023", code="haizhongzheng/Coverage-centric-coreset-selection: generate_importance_score.py",
               differences=(
                   "Negated, so that higher = harder.",
               ),
               tests=(
                   "tests/engine/scoring/test_field_scores.py::test_aum_softmax_is_the_margin_on_probabilities",
               ))),
    Scorer("tdds", "temporal dual-depth score of surrogate 0's first `trajectory` epochs (Zhang et al. 2024)",
           kind="training", observer=Ref("engine.scoring.training_dynamics:TDDS"),
           options={"window": _WINDOW, "trajectory": integer(10, "epochs counted from the start, >= window", 2),
                    "decay": number(0.9, "weight decay over windows", 0, 1, low_open=True, high_open=True)},
           doc=MethodDoc(
               formula=("over the first T = `trajectory` epochs: d_j = Σ_c |p_{j+1,c} (log p_{j+1,c} − log p_{j,c})|"
                        " between consecutive epochs' softmax outputs; per window k of W = `window` epochs (W − 1 "
                        "values of d), ‖d − mean(d)‖₂, weighted by decay·(1 − decay)^(T − W − k) and summed over "
                        "windows"),
               paper="zhang2024", code="zhangxin-xd/Dataset-Pruning-TDDS: importance_evaluation.py",
               differences=(
                   ("Before T epochs are seen, the weights take the epochs seen so far as the trajectory, and with "
                    "fewer than W epochs the one window of all of them, so early score epochs still rank; the "
                    "reference needs the whole trajectory."),
               ),
               tests=(
                   "tests/engine/scoring/test_field_scores.py::test_tdds_matches_the_windowed_formula",
                   ("tests/engine/scoring/test_scorer_options.py::"
                    "test_training_options_change_the_scores_as_the_formulas_say"),
               ))),
    Scorer("dynamic_uncertainty", "std of the target probability over sliding 10-epoch windows of surrogate 0's "
           "training (the last skipped), averaged, from an eval-mode pass (He et al. 2024)", kind="training",
           observer=Ref("engine.scoring.training_dynamics:dynamic_uncertainty"),
           options={"window": _WINDOW,
                    "logits": choice("eval", 'the probabilities of a separate "eval"-mode forward of each batch\'s '
                                     'un-augmented images before the update (the reference), or the "train"ing '
                                     "forward's own (no extra forward)", ("eval", "train"))},
           doc=MethodDoc(
               formula=("(1/(T − W)) Σ_{k=W}^{T−1} std(p_{k−W+1}(y_i), …, p_k(y_i)) (unbiased std), p_j(y_i) the "
                        "target-class probability of sample i at its j-th epoch of surrogate 0's T training epochs "
                        "up to the score epoch, W = `window` (10): the sliding windows of W epochs except the one "
                        "that ends at the last epoch, as the reference skips it. p from a separate forward of each "
                        "training batch's un-augmented images, the model in eval mode, after the training forward "
                        'and before the update (the reference\'s `eval_outputs`); `logits = "train"` reads the '
                        "training forward's own (train mode, augmented input) instead, with no extra forward. Higher "
                        "= more uncertain; `hardest` keeps the highest, as the reference keeps `dyn_unc_rank[-k:]`"),
               paper="he2024", code=("BAAI-DCAI/Dataset-Pruning: ImageNet/get_coreset.py, "
                                     "ImageNet/main_and_produce.py"),
               differences=(
                   "The reference's constant factor 10 is dropped (it changes no ranking).",
                   ("With T ≤ W epochs (no window the reference counts: it would give NaN), the std of the first "
                    "T − 1 epochs (0 below 3 epochs), so early score epochs still rank."),
                   ("The reference puts only ResNets (BatchNorm) in eval mode for its pass and leaves other "
                    "networks in train mode (dropout, drop-path on); here every network is in eval mode."),
                   ('The eval pass costs one more forward per training step; `logits = "train"` (prunelab\'s '
                    "earlier form: Spearman 0.977, top-30 % Jaccard 0.85 with the reference's on real MNIST, per "
                    "issue 24) costs none."),
               ),
               tests=(
                   "tests/engine/scoring/test_field_scores.py::test_dynamic_uncertainty_matches_sliding_window_stds",
                   ("tests/engine/scoring/test_field_scores.py::"
                    "test_dynamic_uncertainty_scores_an_eval_mode_forward_of_the_unaugmented_batch"),
                   ("tests/engine/scoring/test_scorer_options.py::"
                    "test_training_options_change_the_scores_as_the_formulas_say"),
               ))),
    Scorer("entropy", "entropy of softmax(f(x)) averaged over the K surrogates (Coleman et al. 2020)",
           fn=Ref("engine.scoring.uncertainty:entropy_score"), average_inits=True,
           doc=MethodDoc(
               formula=("(1/K) Σ_k −Σ_c p_c log p_c, p = softmax(f_{θ_k}(x_i)), over the K = surrogate.inits "
                        "surrogates"),
               paper="coleman2020", code="PatrickZH/DeepCore: deepcore/methods/uncertainty.py",
               differences=(
                   ("Sign flipped (DeepCore keeps Σ p log p and takes the smallest; here higher = more uncertain, "
                    "the same order)."),
                   "log_softmax, exact, where DeepCore adds 1e-6 inside the log.",
                   "With surrogate.inits > 1 the mean over the K surrogates; DeepCore scores one model.",
               ),
               tests=(
                   "tests/engine/scoring/test_field_scores.py::test_uncertainty_scores_follow_their_formulas",
               ))),
    Scorer("least_confidence", "−max logit (DeepCore; option form: 1 − max probability) averaged over the K "
           "surrogates (Coleman et al. 2020)",
           fn=Ref("engine.scoring.uncertainty:least_confidence_score"), average_inits=True,
           options={"form": choice("logit", '"logit": −max logit (DeepCore); "probability": 1 − max softmax '
                                   "probability (the textbook least confidence)", ("logit", "probability"))},
           doc=MethodDoc(
               formula=("(1/K) Σ_k (−max_c z_c), z = f_{θ_k}(x_i) the logits (eval mode), over the K = "
                        'surrogate.inits surrogates; `form = "probability"`: (1/K) Σ_k (1 − max_c p_c), p = '
                        "softmax(z)"),
               paper="coleman2020", code="PatrickZH/DeepCore: deepcore/methods/uncertainty.py",
               differences=(
                   ("Negated: DeepCore scores the largest logit and, with its main.py's default `balance = True`, "
                    "keeps the smallest of each class; here −max z, higher = less confident, the same order. "
                    "`least_confidence/class_balanced` (order hardest) keeps DeepCore's picks (quotas: "
                    "round(f·n_c) there, ⌊f·n_c⌋ plus largest remainders here). DeepCore's Uncertainty class "
                    "alone defaults to `balance = False`, which keeps the *largest* scores over the whole set "
                    "(the most confident), against its per-class branch; that branch is not followed."),
                   ('`form = "probability"` is the paper\'s least confidence on softmax probabilities (prunelab\'s '
                    "earlier default): Spearman 0.86 with the logit form on real MNIST, per-class 10 % Jaccard "
                    "0.47 (issue 24)."),
                   "With surrogate.inits > 1 the mean over the K surrogates; DeepCore scores one model.",
               ),
               tests=(
                   "tests/engine/scoring/test_field_scores.py::test_uncertainty_scores_follow_their_formulas",
               ))),
    Scorer("margin", "1 − (top-1 − top-2 softmax probability) averaged over the K surrogates (Coleman et al. 2020)",
           fn=Ref("engine.scoring.uncertainty:margin_score"), average_inits=True,
           doc=MethodDoc(
               formula="(1/K) Σ_k [1 − (p_(1) − p_(2))], p_(1) ≥ p_(2) the two largest softmax probabilities",
               paper="coleman2020", code="PatrickZH/DeepCore: deepcore/methods/uncertainty.py",
               differences=(
                   ("1 − (p₁ − p₂) where DeepCore keeps p₁ − p₂ and takes the smallest: the same order, higher = "
                    "more uncertain."),
                   "With surrogate.inits > 1 the mean over the K surrogates; DeepCore scores one model.",
               ),
               tests=(
                   "tests/engine/scoring/test_field_scores.py::test_uncertainty_scores_follow_their_formulas",
               ))),
    Scorer("moderate", "distance of surrogate 0's embedding to its class's median embedding (Moderate-DS, "
           "Xia et al. 2023); pair with the moderate strategy", kind="embedding",
           fn=Ref("engine.scoring.embedding_scores:moderate_score"),
           doc=MethodDoc(
               formula=("‖e_i − median_{j : y_j = y_i} e_j‖₂, e surrogate 0's penultimate embeddings, the median "
                        "coordinate-wise within the class"),
               paper="xia2023", code="tmllab/2023_ICLR_Moderate-DS: selection.py",
               differences=(
                   "The paper's features come from a separately trained extractor; here they are surrogate 0's.",
               ),
               tests=(
                   "tests/engine/scoring/test_reference_scores.py::test_moderate_is_the_distance_to_the_class_median_in_float64",
                   "tests/engine/scoring/test_field_scores.py::test_moderate_is_the_distance_to_the_class_median",
               ))),
    Scorer("prototypes", "cosine distance to the nearest of 10 k-means centroids of its class in surrogate 0's "
           "embedding space (Sorscher et al. 2022)", kind="embedding",
           fn=Ref("engine.scoring.embedding_scores:prototypes_score"),
           options={"clusters": integer(10, "k-means centroids per class", 1)},
           doc=MethodDoc(
               formula=("1 − max_m cos(e_i, μ_m), μ_1..μ_M the M = `clusters` spherical k-means centroids (faiss, 20"
                        " iterations) of the sample's class in surrogate 0's embedding space"),
               paper="sorscher2022",
               differences=(
                   "No official code; the metric is the paper's Section 5.",
                   ("The paper clusters self-supervised (SwAV) embeddings of the whole set; here the supervised "
                    "surrogate's embeddings, within each class."),
                   ("k-means is faiss's, in float32: the scores are pinned at 1e-6 against a float64 recomputation "
                    "from the fitted centroids, not at 1e-10."),
               ),
               tests=(
                   ("tests/engine/scoring/test_reference_scores.py::"
                    "test_prototypes_is_the_cosine_distance_to_the_nearest_centroid_of_the_class"),
                   ("tests/engine/scoring/test_field_scores.py::"
                    "test_prototypes_with_one_centroid_is_the_cosine_distance_to_the_class_direction"),
               ))),
    Scorer("cal", "−mean symmetric KL between surrogate 0's prediction and its 10 nearest same-class neighbours' "
           "(CAL, Margatina et al. 2021, as DeepCore: keeping the highest keeps DeepCore's picks)", kind="embedding",
           fn=Ref("engine.scoring.embedding_scores:cal_score"),
           options={"neighbours": integer(10, "nearest same-class neighbours (DeepCore's k)", 1),
                    "order": choice("deepcore", '"deepcore": −KL, so keeping the highest keeps DeepCore\'s lowest-KL '
                                    'picks; "paper": +KL, the most contrastive highest (CAL\'s acquisition)',
                                    ("deepcore", "paper"))},
           doc=MethodDoc(
               formula=("−(1/k) Σ_{j ∈ N_k(i)} [½ KL(p_i ‖ p_j) + ½ KL(p_j ‖ p_i)], N_k(i) the k = `neighbours` "
                        "nearest other same-class samples (Euclidean, faiss) in surrogate 0's embedding space, p = "
                        'softmax(head(e)); `order = "paper"` drops the minus sign'),
               paper="margatina2021", code="PatrickZH/DeepCore: deepcore/methods/cal.py",
               differences=(
                   ("Negated by default: DeepCore's cal.py keeps the *lowest* KL of each class "
                    "(`argsort(...)[::1]`, `balance = True`), so the score is −KL and keeping the highest keeps its "
                    "picks: `cal/class_balanced` (order hardest) gives DeepCore's (per-class quota round(f·n_c) "
                    "there, ⌊f·n_c⌋ plus largest remainders here: at most one sample apart per class, from the same "
                    "order), and `cal/hardest` (the benchmark's pairing) the same lowest-KL samples over the whole "
                    'set. `order = "paper"` scores +KL, the most contrastive highest, as CAL acquires samples in '
                    "active learning (prunelab's earlier default: Jaccard 0.0 with DeepCore's picks)."),
                   ("DeepCore finds the neighbours with a separately pretrained ResNet-18 (on 224 × 224 resized "
                    "images); here in surrogate 0's embedding space."),
               ),
               tests=(
                   "tests/engine/scoring/test_reference_scores.py::test_cal_is_minus_deepcores_kl_and_keeps_its_picks",
                   "tests/engine/scoring/test_field_scores.py::test_cal_is_the_mean_symmetric_kl_to_same_class_neighbours",
               ))),
    Scorer("grand", "GraNd: exact ‖∇θ L‖₂ averaged over the K surrogates (Paul et al. 2021; use epoch 0, K = 10)",
           needs_param_grads=True, average_inits=True, options=_K_OPTIONS, component="param_grad_norm",
           doc=MethodDoc(
               formula=("(1/K) Σ_k ‖∇_θ ℓ(f_{θ_k}(x_i), y_i)‖₂, exact as `grad_norm`, over surrogates k = 0..K−1 "
                        "(option `inits`) at the score epoch (option `epoch`); the paper's setting is epoch 0, K = "
                        "10, whose pruning signal a reproduction did not find [kirsch2023]"),
               paper="paul2021", code="mansheej/data_diet: data_diet/scores.py",
               differences=(
                   ("K and the epoch default to the run's, not the paper's K = 10 at initialisation: set "
                    "`[scoring.grand] inits = 10, epoch = 0` for the paper's setting."),
                   ("Each surrogate's norm is exact (the same pass as `grad_norm`, pinned at 1e-10 in float64 by its "
                    "tests); the K surrogates' scores are stored in float32 and averaged, pinned at rtol 1e-5."),
               ),
               tests=(
                   "tests/engine/scoring/test_field_scores.py::test_grand_is_the_grad_norm_averaged_over_k_inits",
               ))),
    Scorer("tracin", "TracIn-CP self-influence: Σ over surrogate 0's checkpoints of η_c ‖∇θ L‖², exact (Pruthi "
           "et al. 2020)", kind="training", observer=Ref("engine.scoring.influence:TracIn"), options=_CHECKPOINTS,
           needs_param_grads=True,
           doc=MethodDoc(
               formula=("Σ_{c ∈ C(t)} η_c ‖∇_θ ℓ(f_{θ_c}(x_i), y_i)‖₂², θ_c surrogate 0 at the end of epoch c; C(t) "
                        "the checkpoints c = `every`, 2·`every`, … ≤ t (the last `last` of them; 0: all); η_c the mean "
                        "learning rate of epoch c's steps, the step size between checkpoints c − 1 and c (1 with "
                        "`lr_weight` = false); the gradient over every trainable parameter, exact, in eval mode, from "
                        "the per-layer norm forms: one scoring pass per checkpoint"),
               paper="pruthi2020", code="frederick0329/TracIn: imagenet/resnet50_imagenet_self_influence.ipynb",
               differences=(
                   ("The reference notebook (ResNet-50 on ImageNet) differentiates only the last layer (its weight and "
                    "bias), at checkpoints 30, 60 and 90, and sums them without learning rates; here every trainable "
                    "parameter, exactly. Its checkpoints: `every = 30` with a 90-epoch surrogate; its unweighted sum: "
                    "`lr_weight = false`."),
                   ("η_c is the mean of epoch c's per-step learning rates (the trainer changes the rate every step); "
                    "the paper takes it constant between checkpoints."),
                   ("The surrogate trains with momentum SGD, the paper's derivation assumes plain SGD (momentum scales "
                    "every step by about 1/(1 − μ), which changes no ranking)."),
               ),
               tests=(
                   "tests/engine/scoring/test_influence.py::test_tracin_is_the_lr_weighted_sum_of_squared_norms",
                   "tests/engine/scoring/test_influence.py::test_checkpoint_learning_rates_are_the_optimizers",
                   "tests/engine/scoring/test_influence.py::test_influence_scores_from_a_run_and_their_options",
                   "tests/engine/scoring/test_influence.py::test_checkpoint_scores_in_an_overlap_run",
               ))),
    Scorer("gradient_alignment", "Σ over surrogate 0's checkpoints of η_c ∇θ L · ḡ, ḡ the mean training "
           "gradient: TracIn-CP's influence on the training loss", kind="training",
           observer=Ref("engine.scoring.influence:GradientAlignment"), options=_CHECKPOINTS, needs_param_grads=True,
           doc=MethodDoc(
               formula=("Σ_{c ∈ C(t)} η_c ∇_θ ℓ(f_{θ_c}(x_i), y_i) · ḡ_c, ḡ_c = (1/N) Σ_j ∇_θ ℓ(f_{θ_c}(x_j), y_j) the "
                        "mean training gradient at checkpoint c (C(t) and η_c as `tracin`): TracIn-CP's influence of "
                        "sample i on the mean training loss, (1/N) Σ_j TracInCP(z_i, z_j); exact, two passes per "
                        "checkpoint (ḡ_c, then every g_i · ḡ_c by the per-layer inner-product forms)"),
               paper="pruthi2020",
               differences=(
                   ("No reference code: TracIn-CP with the training set's mean loss as the test function; higher = the "
                    "sample's gradient agrees with the set's (MoSo's intuition without its leave-one-out term)."),
               ),
               tests=(
                   "tests/engine/scoring/test_influence.py::test_gradient_alignment_and_moso_match_the_autograd_loop",
                   "tests/engine/scoring/test_influence.py::test_influence_scores_from_a_run_and_their_options",
                   "tests/engine/scoring/test_influence.py::test_checkpoint_scores_in_an_overlap_run",
               ))),
    Scorer("moso", "MoSo (Tan et al. 2023): mean over surrogate 0's checkpoints of η_c ∇L(S∖z) · ∇ℓ(z), "
           "first-order, exact gradients", kind="training", observer=Ref("engine.scoring.influence:MoSo"),
           needs_param_grads=True,
           options={**_CHECKPOINTS, "form": choice("paper", 'the first-order estimate of the "paper" (Eq. 4), or '
                                                   "the reference code's MoSo_scoring_exact expression",
                                                   ("paper", "reference"))},
           doc=MethodDoc(
               formula=("M̂(z_i) = (1/|C(t)|) Σ_{c ∈ C(t)} η_c ∇_θ L(S∖z_i; θ_c) · ∇_θ ℓ(z_i; θ_c), with ∇L(S∖z_i) = "
                        "(N ḡ_c − g_i)/(N − 1) the gradient of the mean loss over the other N − 1 samples (C(t), η_c "
                        "and ḡ_c as `gradient_alignment`): the paper's Eq. 4, E_t[η_t ⟨∇L(S∖z, w_t), ∇ℓ(z, w_t)⟩], "
                        "over the checkpoints, without its positive constant factor (no ranking changes); exact, two "
                        "passes per checkpoint; higher = more important (keep it with `hardest`)"),
               paper="tan2023", code="hrtan/MoSo: scoring.py",
               differences=(
                   ("The reference trains I = 8 surrogates, each on one eighth of the training set "
                    "(`surrogate_training.py`), and scores each sample with its own part's surrogate and mean gradient "
                    "(N = |S_i|); here one surrogate trained on all of it, and ḡ over all N samples."),
                   ("The reference draws 10 of its 50 per-epoch checkpoints at random to estimate the expectation over "
                    "t, and sums them; here every `every`-th checkpoint, averaged (the expectation over them exactly; "
                    "the mean and the sum rank alike)."),
                   ("The reference's scoring.py calls `MoSo_scoring_exact`, not the paper's first-order form: "
                    "(2N − 3)/(N − 1)² ‖ḡ‖² − ‖g‖²/(N − 1)² + (2N − 4)/(N − 1)² (ḡ − g/N) · g, which weighs ‖g‖² "
                    'about 1.5× more against g · ḡ; `form = "reference"` computes it.'),
                   ("The reference keeps the highest scores class by class with equal per-class quotas (`nopt2` in "
                    "retraining.py): `moso/class_balanced` does that on a balanced set (its quotas follow class "
                    "sizes), `moso/hardest` cuts globally."),
                   ("η_c is the mean of epoch c's per-step learning rates; the reference stores its epoch's rate "
                    "(constant within its epochs)."),
               ),
               tests=(
                   "tests/engine/scoring/test_influence.py::test_gradient_alignment_and_moso_match_the_autograd_loop",
                   "tests/engine/scoring/test_influence.py::test_influence_scores_from_a_run_and_their_options",
                   "tests/engine/scoring/test_influence.py::test_checkpoint_scores_in_an_overlap_run",
               ))),
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


_FILE_SCORERS: dict[tuple, Scorer] = {}  # file: scorers made so far, by name, source and the files' stamps


def _file_scorer(name: str, source: Any, description: str = "") -> Scorer:
    memo = (name, source, stamp(source))
    if memo not in _FILE_SCORERS:
        _FILE_SCORERS[memo] = Scorer(name=name, **scorer_fields(source, description))
    return _FILE_SCORERS[memo]


def register_file_scores(name: str, path: str, *, key: str = "", format: str = "auto", negate: bool = False,
                         description: str = "") -> Scorer:
    """Register the per-sample scores in a file under `name` (a plugin's call; engine/scoring/external.py): `name`
    then works wherever a scorer does (`sweep.methods`, `benchmark.methods`, "all" included, `prunelab score`).
    `format` is npy, csv, npz, ccs or tdds (default: from the file's name); `key` the column, array or pickle key;
    `negate` flips the order (higher = harder, as for every scorer)."""
    check_plain_name(name)
    SCORERS[name] = _file_scorer(name, file_source(path, key, format, negate), description)
    return SCORERS[name]


def check_scorer(name: str) -> Scorer:
    """The registered scorer `name` (or a `file:PATH[#KEY]` one: scores from a file), or UnknownNameError listing
    the known ones."""
    if name.startswith(FILE_PREFIX) and name not in SCORERS:
        return _file_scorer(name, parse_spec(name))
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
