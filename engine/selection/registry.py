"""The strategy registry: a name -> `Strategy` (description, options with defaults, what it needs).

Read by the config validator, the CLI and the TUI's forms; imports no torch. The
built-in strategies are "module:function" references into ranking.py and
coverage.py, loaded when first used; `register_strategy` adds your own.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..options import (
    Option,
    as_options,
    check_options,
    choice,
    describe_options,
    flag,
    integer,
    is_real,
    number,
)
from ..registry import MethodDoc, Registry, implementation

# fn(scores, budget, labels, seed, embeddings, [gradients=,] **options) -> kept indices (any order, distinct),
# or a Selection (kept indices and their weights)
StrategyFn = Callable[..., Any]

ORDERS = ("hardest", "easiest", "random")
GREEDY = ("lazy", "stochastic", "plain")
SPACES = ("embeddings", "gradients")  # what a geometric coreset measures distances in  # submodular maximisation: exact lazy, stochastic (Mirzasoleiman 2015), plain


@dataclass(frozen=True)
class Strategy:
    """A named selection strategy and what a form needs to offer it.

    `options` maps an option name to `(default, description)`. `fn` is called as
    `fn(scores, budget, labels, seed, embeddings, **options)` with every option
    filled in, and returns exactly `budget` distinct indices in any order.
    """

    name: str
    description: str
    fn: StrategyFn
    needs_embeddings: bool = False
    options: dict[str, Option] = field(default_factory=dict)  # name -> its default, help and check
    needs_gradients: bool = False  # then `fn` also gets gradients=: last-layer per-sample gradients (n, D)
    doc: MethodDoc = field(default_factory=MethodDoc)  # formula, paper, reference code, differences, pinning tests (docs/methods/)

    def inputs(self, options: dict[str, Any] | None = None) -> tuple[bool, bool]:
        """(needs embeddings, needs gradients) under `options`: a `space` option picks one of the two."""
        space = {**self.defaults, **(options or {})}.get("space")
        if space is not None:
            return space == "embeddings", space == "gradients"
        return self.needs_embeddings, self.needs_gradients

    @property
    def defaults(self) -> dict[str, Any]:
        return {key: spec.default for key, spec in self.options.items()}

    def describe(self) -> dict[str, Any]:
        """Plain data for CLIs, forms and JSON: name, description, embeddings flag, options."""
        return {
            "name": self.name,
            "description": self.description,
            "needs_embeddings": self.needs_embeddings,
            "needs_gradients": self.needs_gradients,
            "options": describe_options(self.options),
        }


STRATEGIES: Registry[Strategy] = Registry("selection strategy")


def register_strategy(name: str, fn: StrategyFn | str, description: str = "", needs_embeddings: bool = False,
                      options: dict[str, Option | tuple[Any, str]] | None = None,
                      needs_gradients: bool = False, doc: MethodDoc | None = None) -> Strategy:
    """Add a strategy; it is then usable by name in configs, the CLI and the TUI.

    `options` declare its settings: `engine.options.Option` objects (default, help
    and the check `check_strategy` applies), or (default, help) pairs whose values
    are the strategy's own to check (raise ConfigError from `fn`).
    """
    if not description and callable(fn):
        description = (fn.__doc__ or "").strip().split("\n")[0]
    return STRATEGIES.add(name, Strategy(name, description, implementation(fn), needs_embeddings,
                                         as_options(options), needs_gradients, doc or MethodDoc()))


def describe_strategies() -> list[dict[str, Any]]:
    """Every registered strategy as plain data, in registration order."""
    return [s.describe() for s in STRATEGIES.values()]


# ------------------------------------------------------------------ validation
def check_strategy(name: str, options: dict | None) -> dict[str, Any]:
    """Every option of `name`, checked; UnknownNameError for an unknown strategy, ConfigError for an unknown or
    out-of-range option."""
    return check_options(f"selection strategy {name!r}", STRATEGIES.check(name).options, options or {})


def strategy_tables(given: Any) -> Any:
    """A config's `[selection]` as one table per strategy (`[selection.craig] per_class = false`).

    A key that names no strategy but an option is the old flat form (`selection.per_class = true`), still in
    the configs stored with earlier runs and re-read by `--resume`: it applies to every strategy that declares
    that option, as it always did; a strategy's own table wins over it. Anything but a table is left for the
    validator to reject.
    """
    if not isinstance(given, Mapping):
        return given
    tables = {key: dict(value) if isinstance(value, Mapping) else value for key, value in given.items()
              if key in STRATEGIES or isinstance(value, Mapping)}
    for key, value in given.items():
        if key not in tables:
            _apply_flat(tables, key, value)
    return tables


def _apply_flat(tables: dict[str, Any], key: str, value: Any) -> None:
    """An old flat option, into the table of every strategy that declares it (unless the table sets it)."""
    owners = [name for name, strategy in STRATEGIES.items() if key in strategy.options]
    if not owners:
        raise ConfigError(f"{key!r} is neither a strategy nor an option of one; options go in their strategy's "
                          "table, e.g. [selection.ccs] beta = 0.2 (see `prunelab config show`)")
    for name in owners:
        table = tables.setdefault(name, {})
        if isinstance(table, dict):
            table.setdefault(key, value)


def check_keep_ratio(keep_ratio: Any) -> None:
    """Raise ConfigError unless 0 < keep_ratio <= 1."""
    if not (is_real(keep_ratio) and 0 < keep_ratio <= 1):
        raise ConfigError(f"keep_ratio={keep_ratio!r} is out of range; use a number with 0 < keep_ratio <= 1")


# ------------------------------------------------------------------ the built-ins
_ORDER_OPTION = choice("hardest", 'within a group, keep by "hardest", "easiest" or "random"', ORDERS)

register_strategy("hardest", "engine.selection.ranking:hardest", "keep the highest scores (ties broken by a seeded permutation)",
    doc=MethodDoc(
        formula="keep the b = max(1, round(r·n)) highest scores; ties broken by a permutation drawn from the seed",
        tests=(
            "tests/engine/selection/test_selection.py::test_hardest_and_easiest_keep_the_extremes",
            "tests/engine/selection/test_selection.py::test_exact_sorted_sizes_for_every_strategy[hardest]",
        )))
register_strategy("easiest", "engine.selection.ranking:easiest", "keep the lowest scores (ties broken by a seeded permutation)",
    doc=MethodDoc(
        formula=("keep the b lowest scores: `hardest`'s total order read from the other end, so the two never "
                 "overlap at r ≤ 0.5"),
        tests=(
            "tests/engine/selection/test_selection.py::test_hardest_and_easiest_keep_the_extremes",
            "tests/engine/selection/test_selection.py::test_exact_sorted_sizes_for_every_strategy[easiest]",
        )))
register_strategy("random", "engine.selection.ranking:random", "seeded uniform subset; ignores the scores",
    doc=MethodDoc(
        formula=("a uniform subset of b of the n samples, numpy.random.default_rng(seed).choice without replacement;"
                 " the scores are ignored"),
        tests=(
            "tests/engine/selection/test_selection.py::test_random_is_seeded_and_ignores_scores",
        )))
register_strategy(
    "ccs", "engine.selection.coverage:ccs",
    "coverage-centric coreset selection (Zheng et al. 2023): cut the hardest beta, "
    "then sample evenly across equal-width score strata",
    options={"beta": number(0.0, "fraction of hardest samples pruned first", 0, 1, high_open=True),
             "bins": integer(50, "number of equal-width score strata", 1)},
    doc=MethodDoc(
        formula=("cut the ⌊β·n⌋ highest scores (at most n − b); split the rest into `bins` equal-width score strata "
                 "over [min, max]; visit the strata from the smallest up, each taking min(its size, what is left ÷ "
                 "strata left); sample uniformly inside each stratum"),
        paper="zheng2023", code="haizhongzheng/Coverage-centric-coreset-selection: core/data/Coreset.py",
        differences=(
            ("The largest score falls in the last stratum; the reference stretches the maximum by 1.0001, which "
             "misbehaves for negative scores. Infinite scores are clipped to the finite range."),
            ("Strata of equal size are visited in a seeded random order; the reference leaves that order to "
             "torch.argsort, which with a budget below the number of strata sends the single picks to the hardest "
             "strata."),
            ("`beta` is a fraction of n (default 0: no cut); the reference's `mis_num` is a count. If the cut would "
             "leave fewer than b samples it shrinks to n − b."),
            "`bins` is an option (default 50, the reference's fixed number).",
        ),
        tests=(
            "tests/engine/selection/test_selection.py::test_ccs_is_seeded_and_cuts_the_hardest_beta",
            "tests/engine/selection/test_selection.py::test_ccs_covers_the_score_range",
            "tests/engine/selection/test_selection.py::test_allocate_is_the_papers_water_filling",
            "tests/engine/scoring/test_field_scores.py::test_ccs_takes_aum_and_prunes_the_highest_aum_first",
        )),
)
register_strategy(
    "moderate", "engine.selection.moderate:moderate",
    "keep the band of samples around the median score (Moderate-DS, Xia et al. 2023; use with the moderate scorer)",
    doc=MethodDoc(
        formula=("sort the n scores; keep the b samples at ranks round((n − b)/2) … round((n − b)/2) + b − 1, a band"
                 " of exactly b centred on the median; ties broken by a seeded permutation"),
        paper="xia2023", code="tmllab/2023_ICLR_Moderate-DS: selection.py",
        differences=(
            ("The reference prunes below the (0.5 − r/2) and above the (0.5 + r/2) quantiles of the distance; here "
             "the band is exactly b wide."),
        ),
        tests=(
            "tests/engine/scoring/test_field_scores.py::test_moderate_strategy_keeps_the_band_around_the_median",
        )),
)
register_strategy(
    "class_balanced", "engine.selection.coverage:class_balanced",
    "keep_ratio of every class (exact total by largest remainders), within a class by order",
    options={"order": _ORDER_OPTION},
    doc=MethodDoc(
        formula=("each class c keeps ⌊b·n_c/n⌋, the leftover units going to the largest remainders (ties by a seeded"
                 " permutation), so the total is exactly b; within a class by `order` (hardest, easiest or random)"),
        tests=(
            "tests/engine/selection/test_selection.py::test_class_balanced_is_even_per_class",
            "tests/engine/selection/test_selection.py::test_class_balanced_is_proportional_on_unbalanced_classes",
            "tests/engine/claims/test_claims_runs.py::test_coverage_strategies_inside_a_run_keep_what_they_promise",
        )),
)
register_strategy(
    "kmeans_coverage", "engine.selection.coverage:kmeans_coverage",
    "per class, spread the class's quota evenly over k-means clusters of the surrogate's embeddings",
    needs_embeddings=True,
    options={"clusters": integer(10, "k-means clusters per class", 1),
             "order": _ORDER_OPTION,
             "iterations": integer(10, "at most this many Lloyd iterations", 1)},
    doc=MethodDoc(
        formula=("per class, the `class_balanced` quota spread over the class's `clusters` k-means cells of "
                 "surrogate 0's embeddings (k-means++ seeding, at most `iterations` Lloyd steps, a child seed per "
                 "class) by CCS's smallest-first allocation; within a cell by `order`"),
        differences=(
            "No paper or reference code: prunelab's coverage baseline.",
        ),
        tests=(
            "tests/engine/selection/test_selection.py::test_kmeans_coverage_touches_every_cell",
            "tests/engine/selection/test_selection.py::test_kmeans_converges_to_nearest_centers",
            "tests/engine/claims/test_claims_runs.py::test_coverage_strategies_inside_a_run_keep_what_they_promise",
        )),
)

# ------------------------------------------------------------------ coresets (geometric.py, submodular.py, gradient.py)
_PER_CLASS = flag(False, "split the budget over classes in proportion to their sizes")
_PER_CLASS_ON = flag(True, "split the budget over classes in proportion to their sizes")
_GREEDY = choice("lazy", "submodular maximiser: lazy (exact), stochastic (large n) or plain", GREEDY)
_EPSILON = number(0.01, "stochastic greedy's epsilon: each step looks at n/k*ln(1/epsilon) samples", 0, 1,
                  low_open=True, high_open=True)
_WEIGHTED = flag(True, "train with the coreset's per-sample weights; false drops them (an ablation)")

register_strategy(
    "kcenter_greedy", "engine.selection.geometric:kcenter_greedy",
    "k-center greedy (Sener & Savarese 2018): farthest-first traversal of the embeddings",
    needs_embeddings=True, options={"per_class": _PER_CLASS, "space": choice(
        "embeddings", "the distances' space: embeddings (penultimate features) or gradients (last-layer gradients)",
        SPACES)},
    doc=MethodDoc(
        formula=("c₁ drawn from the seed; c_{t+1} = argmax_i min_{j ≤ t} ‖x_i − x_{c_j}‖₂ (farthest-first traversal,"
                 " a 2-approximation of the minimax cover), x the penultimate embeddings or, with space = "
                 '"gradients", the last-layer gradient embeddings; per class when `per_class`'),
        paper="sener2018", code="PatrickZH/DeepCore: deepcore/methods/kcentergreedy.py",
        differences=(
            "The first center is drawn from the run's seed; DeepCore draws it from numpy's global state.",
            "One distance vector per step instead of DeepCore's budget × n matrix (the same picks).",
            'space = "gradients" (BADGE\'s space [ash2020]) is an addition; DeepCore measures embeddings.',
        ),
        tests=(
            "tests/engine/selection/test_coresets.py::test_kcenter_is_within_twice_the_optimum_and_beats_random",
            "tests/engine/selection/test_coresets_everywhere.py::test_kcenter_greedy_on_gradient_embeddings",
        )))
register_strategy(
    "herding", "engine.selection.geometric:herding",
    "herding (Welling 2009): the running mean of the kept embeddings tracks the mean of all",
    needs_embeddings=True, options={"per_class": _PER_CLASS},
    doc=MethodDoc(
        formula=("x_{t+1} = argmin_{i ∉ S} ‖(t + 1)·μ − (Σ_{j ∈ S} x_j + x_i)‖₂, μ the mean embedding (of the class "
                 "when `per_class`): the mean of the kept samples tracks μ; deterministic"),
        paper="welling2009", code="PatrickZH/DeepCore: deepcore/methods/herding.py",
        differences=(
            ("Takes the argmin, Welling's herding; DeepCore's herding.py takes torch.argmax (the farthest point): "
             "Jaccard 0.016 with DeepCore as published. Kept as the better science; the code's docstring, which says"
             " DeepCore takes the argmin too, is wrong."),
        ),
        tests=(
            "tests/engine/selection/test_selection.py::test_exact_sorted_sizes_for_every_strategy[herding]",
            "tests/engine/selection/test_coresets_everywhere.py::test_bench_select_table_and_speedups",
        )))
_SUBMODULAR = {"per_class": _PER_CLASS_ON, "greedy": _GREEDY, "epsilon": _EPSILON}
register_strategy(
    "facility_location", "engine.selection.submodular:facility_location",
    "facility location on the embeddings' cosine similarity, maximised greedily",
    needs_embeddings=True, options=dict(_SUBMODULAR),
    doc=MethodDoc(
        formula=("max_S Σ_i max_{j ∈ S} s(i, j), s = 0.5 + 0.5·cos(e_i, e_j) between penultimate embeddings, "
                 "maximised greedily: lazy (exact: plain greedy's picks), stochastic [mirzasoleiman2015] or plain; "
                 "per class by default"),
        paper="guo2022", code="PatrickZH/DeepCore: deepcore/methods/methods_utils/submodular_function.py",
        differences=(
            ("Similarities between penultimate embeddings; the cited DeepCore code compares last-layer gradients "
             "(`calc_gradient` + cosine): Jaccard 0.20 between the sets kept in the two spaces."),
            ("Row blocks of at most 256 MB: the class's n × n similarity matrix is held only when it fits (the same "
             "values as DeepCore's full matrix)."),
        ),
        tests=(
            "tests/engine/selection/test_coresets.py::test_facility_location_is_within_one_minus_one_over_e_of_the_optimum",
            "tests/engine/selection/test_coresets.py::test_lazy_greedy_picks_what_plain_greedy_picks[facility_location]",
        )))
register_strategy(
    "graph_cut", "engine.selection.submodular:graph_cut",
    "graph cut on the embeddings' cosine similarity (representative minus lam x redundant)",
    needs_embeddings=True, options={**_SUBMODULAR, "lam": number(1.0, "weight of the redundancy term", 0)},
    doc=MethodDoc(
        formula=("max_S Σ_{i ∈ V, j ∈ S} s_ij − λ Σ_{i, j ∈ S} s_ij (submodlib's GraphCut [kaushal2022]), s = 0.5 + "
                 "0.5·cos of the penultimate embeddings, λ = `lam`; greedy as facility_location"),
        paper="guo2022", code="PatrickZH/DeepCore: deepcore/methods/methods_utils/submodular_function.py",
        differences=(
            ("Similarities between penultimate embeddings; the cited DeepCore code compares last-layer gradients: "
             "Jaccard 0.33 between the sets kept in the two spaces."),
            ("Row blocks of at most 256 MB: the class's n × n similarity matrix is held only when it fits (the same "
             "values as DeepCore's full matrix)."),
        ),
        tests=(
            "tests/engine/selection/test_coresets.py::test_lazy_greedy_picks_what_plain_greedy_picks[graph_cut]",
        )))
register_strategy(
    "log_determinant", "engine.selection.submodular:log_determinant",
    "log-determinant of the embeddings' cosine kernel (diversity), maximised greedily",
    needs_embeddings=True, options={**_SUBMODULAR, "ridge": number(1e-4, "added to the kernel's diagonal", 0)},
    doc=MethodDoc(
        formula=("max_S log det(L_S + ridge·I), L_ij = 0.5 + 0.5·cos(e_i, e_j); every gain exact each step from an "
                 "incremental Cholesky factor [chen2018], O(n·b) memory"),
        paper="guo2022", code="PatrickZH/DeepCore: deepcore/methods/methods_utils/submodular_function.py",
        differences=(
            ("Similarities between penultimate embeddings; the cited DeepCore code compares last-layer gradients: "
             "Jaccard 0.46 between the sets kept in the two spaces."),
            "The kernel is never held as an n × n matrix.",
        ),
        tests=(
            "tests/engine/selection/test_coresets.py::test_lazy_greedy_picks_what_plain_greedy_picks[log_determinant]",
        )))
register_strategy(
    "craig", "engine.selection.gradient:craig",
    "CRAIG (Mirzasoleiman et al. 2020): per-class facility location on gradients, weights = samples covered",
    needs_gradients=True, options={"per_class": _PER_CLASS_ON, "greedy": _GREEDY, "epsilon": _EPSILON,
                                   "weighted": _WEIGHTED},
    doc=MethodDoc(
        formula=("per class, facility location with similarity c − ‖g_i − g_j‖₂ on the last-layer gradient "
                 "embeddings (c = twice the largest distance to the class mean, which gives CRAIG's max(D) − D "
                 "picks); each medoid's weight is the number of class samples nearest to it, so a class's weights "
                 "sum to its size"),
        paper="mirzasoleiman2020", code="baharanm/craig: util.py",
        differences=(
            "Weights are the cluster sizes, as baharanm/craig; DeepCore's craig.py adds 1 to each.",
            ("A medoid that covers no sample (exact duplicate gradients) keeps weight 0; baharanm/craig sets it to "
             "1."),
            ("Distances come in row blocks, not a full matrix; greedy lazy by default (CRAIG's lazy heap), "
             "stochastic on request."),
        ),
        tests=(
            "tests/engine/selection/test_coresets.py::test_craig_weights_are_the_class_members_each_medoid_covers",
            "tests/engine/selection/test_coresets.py::test_lazy_greedy_picks_what_plain_greedy_picks[craig]",
            "tests/engine/selection/test_coresets.py::test_doubling_every_weight_is_doubling_the_lr_with_plain_sgd",
        )))
register_strategy(
    "gradmatch", "engine.selection.gradient:gradmatch",
    "GradMatch (Killamsetty et al. 2021): per-class non-negative OMP matching the gradient sum",
    needs_gradients=True, options={"per_class": _PER_CLASS_ON, "omp_lam": number(1.0, "ridge on the OMP weights", 0),
                                   "weighted": _WEIGHTED},
    doc=MethodDoc(
        formula=("per class, orthogonal matching pursuit: add the sample whose gradient best correlates with the "
                 "residual, then refit all weights by min_{w ≥ 0} ‖Σ_{j ∈ S} w_j g_j − Σ_i g_i‖² + λ‖w‖² (λ = "
                 "`omp_lam`, DeepCore's 1); the kept samples train with those weights"),
        paper="killamsetty2021gradmatch", code="decile-team/cords: cords/selectionstrategies/SL/gradmatchstrategy.py",
        differences=(
            ("OMP always takes the whole budget (later picks may get weight 0, and are kept); cords stops once the "
             "residual falls below a tolerance and fills the budget at random, and DeepCore's gradmatch.py drops the"
             " picks whose weight is 0 (496 of a budget of 500 kept). The code's docstring gives cords' behaviour as"
             " DeepCore's, which is wrong."),
            ("The weights are refitted by a warm-started active-set NNLS on the Gram form (`nnls_gram`), equal to "
             "scipy's NNLS at 1e-10, in float64."),
        ),
        tests=(
            "tests/engine/selection/test_coresets.py::test_gradmatch_residual_shrinks_with_the_budget",
            "tests/engine/selection/test_coresets.py::test_gradmatch_weights_are_the_exact_nonnegative_ridge_fit_of_its_picks",
            "tests/engine/selection/test_coresets.py::test_nnls_gram_matches_scipy_from_any_warm_start",
        )))
register_strategy(
    "glister", "engine.selection.gradient:glister",
    "GLISTER (Killamsetty et al. 2021): greedy one-step Taylor gain on a class-stratified validation holdout",
    needs_gradients=True, options={"per_class": _PER_CLASS_ON,
                                   "validation": number(0.1, "fraction of each class held out as validation", 0, 1,
                                                         low_open=True, high_open=True),
                                   "eta": number(0.1, "the one-step learning rate of the Taylor approximation", 0,
                                                 low_open=True)},
    doc=MethodDoc(
        formula=("greedy: add argmax_{i ∉ S} g_i · ∇L_val(θ_S), θ_S = θ − η·mean(g_S) moving only the last layer (η "
                 "= `eta`), the validation logits updated exactly and the validation gradient recomputed after each "
                 "pick; validation = a seeded class-stratified holdout of `validation` (10 %) of the training set"),
        paper="killamsetty2021glister", code="PatrickZH/DeepCore: deepcore/methods/glister.py",
        differences=(
            ("With per_class = true every class is matched against the validation gradient of the whole all-class "
             "holdout; DeepCore (and cords' glisterstrategy.py) match each class against that class's own validation"
             " samples: Jaccard 0.015 with the reference, below chance (0.053)."),
            ("The holdout's logits and features are recovered from its gradient embeddings (unprojected ones only); "
             "holdout samples stay selectable, so any keep ratio is valid."),
        ),
        tests=(
            "tests/engine/selection/test_coresets.py::test_glister_is_greedy_on_the_autograd_validation_gradient",
            ("tests/engine/selection/test_coresets.py::"
             "test_glister_recovers_the_holdout_and_starts_from_the_validation_gradient"),
        )))
register_strategy(
    "contextual_diversity", "engine.selection.geometric:contextual_diversity",
    "contextual diversity (Agarwal et al. 2020): k-center greedy on the KL divergence of the softmax outputs",
    needs_gradients=True, options={"per_class": _PER_CLASS},
    doc=MethodDoc(
        formula=("k-center greedy where the distance from sample i to center c is KL(p_i ‖ p_c), p the surrogate's "
                 "softmax outputs (read from the gradient embeddings, whose bias block is p − onehot(y)); first "
                 "center drawn from the seed"),
        paper="agarwal2020", code="PatrickZH/DeepCore: deepcore/methods/contextualdiversity.py",
        differences=(
            "One-way KL(p_i ‖ p_c); DeepCore's `_metric` is the symmetric ½KL + ½KL: Jaccard 0.56.",
            ("per_class defaults to false; DeepCore defaults to balance = True (the code's docstring, which says "
             '"per_class false as in DeepCore", is wrong).'),
            "The first center is drawn from the run's seed.",
        ),
        tests=(
            "tests/engine/selection/test_coresets.py::test_contextual_diversity_is_farthest_first_in_kl",
        )))
register_strategy(
    "d2_pruning", "engine.selection.d2:d2_pruning",
    "D2-pruning (Maharana et al. 2024): scores passed over a kNN graph of the embeddings, then diverse sampling",
    needs_embeddings=True, options={"n_neighbor": integer(10, "neighbours per sample in the kNN graph", 1),
                                    "gamma": number(0.0, "reverse-message decay exp(-gamma*d); 0 = 1/embedding width",
                                                    0)},
    doc=MethodDoc(
        formula=("a kNN graph (k = `n_neighbor`) of the embeddings made symmetric, edge weight exp(−d_ij); forward "
                 'pass ("product" mode): s_i ← s_i · Σ_{j ~ i} exp(−d_ij)·max(s_j, 1e-7); then repeatedly pick the '
                 "highest node and lower each of its k nearest neighbours by exp(−γ·d)·(the pick's score), γ = "
                 "`gamma` (0: 1/embedding width)"),
        paper="maharana2024", code="adymaharana/d2pruning: core/data/sampling.py",
        differences=(
            ("The reverse pass lowers only each pick's k directed neighbours; the reference lowers every neighbour "
             "in the symmetric kNN graph (mean degree 13.8 at k = 10): Jaccard 0.34; with directed neighbours the "
             "reference's picks match exactly."),
            ('The forward pass is "product" mode; the reference\'s README recipe is `--graph-mode sum`, γ = 0.1, k = '
             "5 (Jaccard 0.21 against it)."),
            ("The graph comes from blocked torch distances (the reference: sklearn's dense pairwise matrix); the "
             "budget is global, without the reference's optional CCS-style stratification."),
        ),
        tests=(
            "tests/engine/selection/test_coresets.py::test_d2_pruning_passes_messages_over_the_knn_graph",
        )))
register_strategy(
    "semdedup", "engine.selection.semdedup:semdedup",
    "SemDeDup (Abbas et al. 2023): spherical k-means of the embeddings, then drop every sample too similar to an "
    "earlier one of its cluster",
    needs_embeddings=True,
    options={"clusters": integer(0, "spherical k-means clusters (at most n); 0: one per 1,000 samples, at least 1 "
                                    "(the reference's LAION-440M config: 50,000, one per 8,800)", 0),
             "iterations": integer(100, "k-means iterations (faiss niter, the reference's 100)", 1),
             "keep": choice("hard", 'of each group of duplicates keep the one farthest from its centroid ("hard", '
                                    'the reference\'s default), the nearest ("easy") or a random one',
                            ("hard", "easy", "random")),
             "epsilon": number(0.0, "the budget as ε > 0: keep exactly the samples with M ≤ 1 − ε (the keep ratio "
                                    "must be the fraction that is); 0: the keep ratio sets ε", 0, 1)},
    doc=MethodDoc(
        formula=("e the embeddings normalised to unit length; spherical k-means (faiss, `clusters` centroids, "
                 "default one per 1,000 samples, `iterations` iterations, seeded), each sample in its nearest "
                 "centroid's cluster; within a cluster ordered by cosine distance to the centroid, farthest first "
                 "(`keep`); M_j = max(0, max_{i before j} e_i · e_j); drop every j with M_j > 1 − ε, so of each group "
                 "of near-duplicates the first is kept. Budget: a keep ratio keeps the b smallest M (the ε that keeps "
                 "b), or `epsilon` sets ε"),
        paper="abbas2023", code="facebookresearch/SemDeDup: semdedup.py",
        differences=(
            ("The embeddings are surrogate 0's penultimate features; the paper uses a pretrained encoder's (CLIP "
             "for LAION, OPT for C4)."),
            ("The rule is the reference's: M_j compares sample j with every earlier sample of its cluster, kept or "
             "dropped, so a chain a ≈ b ≈ c with a ≉ c drops both b and c; a test against kept samples only would "
             "keep c (on 1,000 MNIST digits' pixels, 7 clusters, it would drop 34 instead of 39 at ε = 0.1, 335 "
             "instead of 398 at ε = 0.3)."),
            ("With a keep ratio the samples of smallest M are kept, ties at the cut broken by a seeded permutation; "
             "the reference, given ε, keeps all of a tie or none. `epsilon` is the reference's budget, exact."),
            ("Similarities in float64 (the reference: float32); `keep = \"random\"` shuffles with numpy's generator "
             "seeded by the run's seed (the reference: Python's random)."),
            ("faiss's k-means with its defaults (at most 256 samples per centroid train it, as in the reference), "
             "but min_points_per_centroid = 1, which only silences its warning on small sets. The scores are not "
             "used."),
        ),
        tests=(
            "tests/engine/selection/test_semdedup.py::test_semdedup_matches_an_independent_loop_of_the_reference",
            "tests/engine/selection/test_semdedup.py::test_semdedup_finds_planted_exact_and_near_duplicates",
            "tests/engine/selection/test_semdedup.py::test_semdedup_budget_options_and_errors",
        )),
)
