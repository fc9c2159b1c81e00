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
SPACES = ("embeddings", "gradients")  # what a coreset measures distances or similarities in


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
            "tests/engine/selection/test_selection.py::test_keep_count_is_pythons_round_of_r_times_n",
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
            "tests/engine/selection/test_selection.py::test_random_is_numpys_seeded_choice",
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
            "tests/engine/selection/test_selection.py::test_ccs_cuts_the_floor_of_beta_n_and_fills_strata_by_the_papers_loop",
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
            "tests/engine/selection/test_selection.py::test_moderate_keeps_the_band_that_starts_at_round_half_of_the_rest",
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
            "tests/engine/selection/test_selection.py::test_class_balanced_quotas_are_largest_remainders",
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
            ("tests/engine/selection/test_selection.py::"
             "test_kmeans_coverage_fills_each_class_quota_over_its_cells_and_keeps_the_hardest"),
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
_SPACE_GRADIENTS = choice("gradients", "the similarities' space: gradients (last-layer gradient embeddings, "
                          "DeepCore's) or embeddings (penultimate features)", SPACES)

# What every per-class DeepCore strategy shares (DeepCore's main.py passes --balance, default True, to each method).
_QUOTAS = ("Per class, each class keeps its share of b by largest remainders, so the total is exactly b; DeepCore "
           "keeps round(r·n_c) of each class, whose total can differ from b by a few samples.")
_BALANCE_OFF = ("`per_class` defaults to false, as the DeepCore class (`balance=False`); DeepCore's main.py passes "
                "`--balance` (default True) to every method, so its published tables are per class: set "
                "`per_class = true` to reproduce them.")
_GRADIENT_LAYOUT = ("The gradient embeddings are class-major (p − onehot(y)) ⊗ [e, 1]; DeepCore's `calc_gradient` "
                    "orders the same numbers [bias block, weight block]: a permutation of the coordinates, so "
                    "every cosine and distance is the same. Projected ones (above `surrogate.gradient_mb`) are "
                    "a Johnson–Lindenstrauss approximation of them.")
_SUBMODULAR_GREEDY = ('Greedy "lazy" (exact: plain greedy\'s picks) and per class by default, as DeepCore\'s main.py '
                      "runs it (`--submodular_greedy LazyGreedy`, `--balance True`); its `Submodular` class alone "
                      "defaults to ApproximateLazyGreedy (β = 0.9) and `balance=False`.")
_ZERO_GRADIENT = ("A zero vector (a sample predicted with probability 1 in float32 has a zero gradient) has cosine 0 "
                  "with everything (s = 0.5); DeepCore's `cossim_np` gives NaN there.")

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
            ("The first center is drawn from the run's seed (a child stream per class); DeepCore seeds numpy's "
             "global state with the same seed for every class."),
            "One distance vector per step instead of DeepCore's budget × n matrix (the same picks).",
            'space = "gradients" (BADGE\'s space [ash2020]) is an addition; DeepCore measures embeddings.',
            _BALANCE_OFF,
            _QUOTAS,
        ),
        tests=(
            "tests/engine/selection/test_geometric.py::test_kcenter_greedy_is_farthest_first_from_the_seeded_center",
            "tests/engine/selection/test_coresets.py::test_kcenter_is_within_twice_the_optimum_and_beats_random",
            "tests/engine/selection/test_coresets_everywhere.py::test_kcenter_greedy_on_gradient_embeddings",
        )))
register_strategy(
    "herding", "engine.selection.geometric:herding",
    "herding (Welling 2009): the running mean of the kept embeddings tracks the mean of all",
    needs_embeddings=True, options={
        "per_class": _PER_CLASS,
        "pick": choice("nearest", "nearest: Welling's herding (argmin); farthest: DeepCore's herding.py (argmax)",
                       ("nearest", "farthest"))},
    doc=MethodDoc(
        formula=("x_{t+1} = argmin_{i ∉ S} ‖(t + 1)·μ − (Σ_{j ∈ S} x_j + x_i)‖₂, μ the mean embedding (of the class "
                 'when `per_class`): the mean of the kept samples tracks μ; deterministic. pick = "farthest" takes '
                 "the argmax instead"),
        paper="welling2009", code="PatrickZH/DeepCore: deepcore/methods/herding.py",
        differences=(
            ('Takes the argmin by default, Welling\'s herding (better science: the kept mean tracks μ); DeepCore\'s '
             'herding.py takes torch.argmax, the farthest point (Jaccard 0.016 with the argmin\'s set): '
             'pick = "farthest" reproduces DeepCore\'s published tables.'),
            _BALANCE_OFF,
            _QUOTAS,
            "The distance is expanded as ‖x‖² − 2x·target (+ a constant): one vector-matrix product per step.",
        ),
        tests=(
            "tests/engine/selection/test_geometric.py::test_herding_takes_welling_argmin_and_deepcore_argmax_on_request",
            "tests/engine/selection/test_selection.py::test_exact_sorted_sizes_for_every_strategy[herding]",
        )))
_SUBMODULAR = {"per_class": _PER_CLASS_ON, "greedy": _GREEDY, "epsilon": _EPSILON, "space": _SPACE_GRADIENTS}
_SUBMODULAR_CODE = "PatrickZH/DeepCore: deepcore/methods/submodular.py, deepcore/methods/methods_utils/submodular_function.py"
register_strategy(
    "facility_location", "engine.selection.submodular:facility_location",
    "facility location on the cosine similarity of the last-layer gradients, maximised greedily",
    needs_gradients=True, options=dict(_SUBMODULAR),
    doc=MethodDoc(
        formula=("max_S Σ_i max_{j ∈ S} s(i, j), s = 0.5 + 0.5·cos(g_i, g_j) between last-layer gradient embeddings"
                 ' (space = "embeddings": penultimate embeddings), maximised greedily: lazy (exact: plain greedy\'s '
                 "picks), stochastic [mirzasoleiman2015] or plain; per class by default"),
        paper="guo2022", code=_SUBMODULAR_CODE,
        differences=(
            ('space = "embeddings" is an addition (Jaccard 0.20 between the sets kept in the two spaces); the '
             "default compares gradients, as DeepCore."),
            _GRADIENT_LAYOUT,
            _ZERO_GRADIENT,
            _SUBMODULAR_GREEDY,
            _QUOTAS,
            ("Row blocks of at most 256 MB: the class's n × n similarity matrix is held only when it fits (the same "
             "values as DeepCore's full matrix)."),
        ),
        tests=(
            "tests/engine/selection/test_submodular.py::test_facility_location_matches_apricot_and_submodlib",
            "tests/engine/selection/test_submodular.py::test_submodular_strategies_compare_deepcores_gradients_by_default",
            "tests/engine/selection/test_coresets.py::test_facility_location_is_within_one_minus_one_over_e_of_the_optimum",
            "tests/engine/selection/test_coresets.py::test_lazy_greedy_picks_what_plain_greedy_picks[facility_location]",
            "tests/engine/selection/test_submodular.py::test_greedy_ends_on_exact_ties_that_never_shrink",
        )))
register_strategy(
    "graph_cut", "engine.selection.submodular:graph_cut",
    "graph cut on the cosine similarity of the last-layer gradients (representative minus lam x redundant)",
    needs_gradients=True, options={**_SUBMODULAR, "lam": number(1.0, "weight of the redundancy term", 0)},
    doc=MethodDoc(
        formula=("max_S Σ_{i ∈ V, j ∈ S} s_ij − λ Σ_{i, j ∈ S} s_ij (submodlib's GraphCut [kaushal2022]), s = 0.5 + "
                 "0.5·cos of the last-layer gradient embeddings (or the embeddings), λ = `lam`; greedy as "
                 "facility_location"),
        paper="guo2022", code=_SUBMODULAR_CODE,
        differences=(
            ("DeepCore's `lam` weighs the first term (gain λ·Σ_i s_ij − 2·Σ_{i ∈ S} s_ij), submodlib's and "
             "prunelab's the second: the same picks at λ = 1, the default of both (s_jj = 1)."),
            ('space = "embeddings" is an addition (Jaccard 0.33 between the sets kept in the two spaces).'),
            _GRADIENT_LAYOUT,
            _ZERO_GRADIENT,
            _SUBMODULAR_GREEDY,
            _QUOTAS,
            ("Row blocks of at most 256 MB: the class's n × n similarity matrix is held only when it fits (the same "
             "values as DeepCore's full matrix)."),
        ),
        tests=(
            "tests/engine/selection/test_submodular.py::test_graph_cut_matches_submodlib",
            "tests/engine/selection/test_submodular.py::test_submodular_strategies_compare_deepcores_gradients_by_default",
            "tests/engine/selection/test_coresets.py::test_lazy_greedy_picks_what_plain_greedy_picks[graph_cut]",
        )))
register_strategy(
    "log_determinant", "engine.selection.submodular:log_determinant",
    "log-determinant of the cosine kernel of the last-layer gradients (diversity), maximised greedily",
    needs_gradients=True, options={**_SUBMODULAR, "ridge": number(1e-4, "added to the kernel's diagonal", 0)},
    doc=MethodDoc(
        formula=("max_S log det(L_S + ridge·I), L_ij = 0.5 + 0.5·cos(g_i, g_j) of the last-layer gradient embeddings "
                 "(or the embeddings); every gain exact each step from an incremental Cholesky factor [chen2018], "
                 "O(n·b) memory; the first pick, where every gain ties at log(1 + ridge), is the lowest index"),
        paper="guo2022", code=_SUBMODULAR_CODE,
        differences=(
            ("The gain is the log-det's, log(L_jj − L_jS L_S⁻¹ L_Sj) (submodlib's LogDeterminant [kaushal2022]). "
             "DeepCore's `calc_gain` returns L_jS L_S⁺ L_Sj, the part of L_jj that S already explains, and its "
             "greedy takes the argmax of that (the most redundant sample; all zero on the first step): prunelab "
             "follows the function, not that code."),
            ('space = "embeddings" is an addition (Jaccard 0.46 between the sets kept in the two spaces).'),
            _GRADIENT_LAYOUT,
            _ZERO_GRADIENT,
            _SUBMODULAR_GREEDY,
            _QUOTAS,
            "The kernel is never held as an n × n matrix.",
        ),
        tests=(
            "tests/engine/selection/test_submodular.py::test_log_determinant_is_greedy_on_submodlibs_gains",
            "tests/engine/selection/test_submodular.py::test_submodular_strategies_compare_deepcores_gradients_by_default",
            "tests/engine/selection/test_coresets.py::test_lazy_greedy_picks_what_plain_greedy_picks[log_determinant]",
        )))
register_strategy(
    "craig", "engine.selection.gradient:craig",
    "CRAIG (Mirzasoleiman et al. 2020): per-class facility location on gradients, weights = samples covered",
    needs_gradients=True, options={"per_class": _PER_CLASS_ON, "greedy": _GREEDY, "epsilon": _EPSILON,
                                   "weighted": _WEIGHTED,
                                   "plus_one": flag(False, "add 1 to every weight, as DeepCore's craig.py")},
    doc=MethodDoc(
        formula=("per class, facility location with similarity c − ‖g_i − g_j‖₂ on the last-layer gradient "
                 "embeddings (c = twice the largest distance to the class mean, which gives CRAIG's max(D) − D "
                 "picks); each medoid's weight is the number of class samples nearest to it (itself included), so "
                 "a class's weights sum to its size; `plus_one` adds 1 to each"),
        paper="mirzasoleiman2020", code="baharanm/craig: util.py",
        differences=(
            ("Weights are the cluster sizes, as baharanm/craig; DeepCore's craig.py adds 1 to each "
             "(`plus_one = true` reproduces it)."),
            ("A medoid that covers no sample (exact duplicate gradients) keeps weight 0; baharanm/craig sets it to "
             "1."),
            ("DeepCore's similarity is max(D) − D + 10⁻³, prunelab's c − D: any constant c ≥ max(D) gives the "
             "same greedy picks (the gains differ by a constant on the first step only)."),
            _GRADIENT_LAYOUT,
            _QUOTAS,
            ("Distances come in row blocks, not a full matrix; greedy lazy by default (CRAIG's lazy heap), "
             "stochastic on request."),
        ),
        tests=(
            "tests/engine/selection/test_gradient.py::test_craig_matches_apricot_on_max_d_minus_d_and_weighs_by_cluster_size",
            "tests/engine/selection/test_coresets.py::test_craig_weights_are_the_class_members_each_medoid_covers",
            "tests/engine/selection/test_coresets.py::test_lazy_greedy_picks_what_plain_greedy_picks[craig]",
            "tests/engine/selection/test_coresets.py::test_doubling_every_weight_is_doubling_the_lr_with_plain_sgd",
        )))
register_strategy(
    "gradmatch", "engine.selection.gradient:gradmatch",
    "GradMatch (Killamsetty et al. 2021): per-class non-negative OMP matching the gradient sum",
    needs_gradients=True, options={"per_class": _PER_CLASS_ON, "omp_lam": number(1.0, "ridge on the OMP weights", 0),
                                   "weighted": _WEIGHTED,
                                   "zero_weights": choice("keep", "a pick whose weight ends at 0: keep it (weight 0),"
                                                          " or fill its place at random with weight 1 (cords)",
                                                          ("keep", "fill"))},
    doc=MethodDoc(
        formula=("per class, orthogonal matching pursuit: add the unchosen sample whose gradient has the largest "
                 "(signed) inner product with the residual, then refit all weights by min_{w ≥ 0} ‖Σ_{j ∈ S} w_j g_j "
                 "− Σ_i g_i‖² + λ‖w‖² (λ = `omp_lam`); b picks in all; a pick whose weight ends at 0 stays with "
                 'weight 0, or with zero_weights = "fill" gives its place to a sample drawn at random from those '
                 "not kept, with weight 1; the kept samples train with their weights"),
        paper="killamsetty2021gradmatch", code="decile-team/cords: cords/selectionstrategies/SL/gradmatchstrategy.py",
        differences=(
            ("cords (`OrthogonalMP_REG_Parallel_V1`) matches the sum of the class's gradients as here, refits by "
             "ridge least squares and drops the most negative pick until no weight is negative, stops once the "
             "relative residual is below `eps` (1e-100 in its configs: never), drops the zero weights and fills the "
             'budget at random with weight 1 (zero_weights = "fill" does that last step); its CIFAR configs use '
             "`PerClassPerGradient` (only the class's own rows of the gradient) and λ = 0.5, and on a CPU it calls "
             "`OrthogonalMP_REG` with λ = 0."),
            ("DeepCore's gradmatch.py matches the class's mean gradient (not the sum: the ridge λ = 1 weighs "
             "n_c² times more), refits by unconstrained ridge least squares during the pursuit and by one "
             "`nnls(M, A·b)` on the normal equations at the end, and drops the picks whose weight is 0 (496 of a "
             "budget of 500 kept). prunelab keeps them with weight 0: they add nothing to the loss, but hold "
             "places in the batches and in the mean-1 scaling of the weights."),
            ("Weights refitted by a warm-started active-set NNLS on the Gram form (`nnls_gram`), equal to scipy's "
             "NNLS at 1e-10, in float64."),
            _GRADIENT_LAYOUT,
            _QUOTAS,
        ),
        tests=(
            "tests/engine/selection/test_gradient.py::test_gradmatch_is_omp_with_a_nonnegative_ridge_refit_each_pick",
            "tests/engine/selection/test_gradient.py::test_gradmatch_fill_replaces_zero_weights_like_cords",
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
                 "pick; validation = a seeded class-stratified holdout of `validation` (10 %) of the training set; "
                 "per class (the default), each class against its own holdout samples only"),
        paper="killamsetty2021glister", code="PatrickZH/DeepCore: deepcore/methods/glister.py",
        differences=(
            ("The validation set is a 10 % holdout of the training set; DeepCore uses the whole training set when "
             "no `dst_val` is given (its main.py gives none), cords a separate validation split."),
            ("Plain greedy: every gain recomputed each step (cords' `Naive`). DeepCore runs LazyGreedy on this gain, "
             "which is not submodular (gains can grow), so its picks can differ from plain greedy's."),
            ("θ_S moves by η times the mean of the picks' gradients, as DeepCore (η = its lr, 0.1); cords' greedy "
             "moves by η times their sum."),
            ("The holdout's logits and features are recovered from its gradient embeddings (unprojected ones only); "
             "holdout samples stay selectable, so any keep ratio is valid."),
            _QUOTAS + " cords takes ⌈b·n_c/n⌉.",
        ),
        tests=(
            "tests/engine/selection/test_gradient.py::test_glister_matches_each_class_against_its_own_holdout",
            "tests/engine/selection/test_coresets.py::test_glister_is_greedy_on_the_autograd_validation_gradient",
            ("tests/engine/selection/test_coresets.py::"
             "test_glister_recovers_the_holdout_and_starts_from_the_validation_gradient"),
        )))
register_strategy(
    "contextual_diversity", "engine.selection.geometric:contextual_diversity",
    "contextual diversity (Agarwal et al. 2020): k-center greedy on the symmetric KL divergence of the softmax outputs",
    needs_gradients=True, options={"per_class": _PER_CLASS_ON},
    doc=MethodDoc(
        formula=("k-center greedy where the distance from sample i to center c is DeepCore's symmetric KL, "
                 "½KL(p_i ‖ p_c) + ½KL(p_c ‖ p_i) = ½ Σ_k (p_ik − p_ck)(log p_ik − log p_ck), p the surrogate's "
                 "softmax outputs (read from the gradient embeddings, whose bias block is p − onehot(y)); first "
                 "center drawn from the seed; per class by default (DeepCore's `balance = True`)"),
        paper="agarwal2020", code="PatrickZH/DeepCore: deepcore/methods/contextualdiversity.py",
        differences=(
            ("The first center is drawn from the run's seed (a child stream per class); DeepCore seeds numpy's "
             "global state with the same seed for every class."),
            ("Probabilities are clamped at 1e-12 before the logarithms (DeepCore takes the logs of its float32 "
             "softmax as they are: −inf, then NaN, where one underflows to 0)."),
            _QUOTAS,
        ),
        tests=(
            "tests/engine/selection/test_geometric.py::test_contextual_diversity_is_farthest_first_in_symmetric_kl_per_class",
            "tests/engine/selection/test_coresets.py::test_contextual_diversity_is_farthest_first_in_kl",
        )))
register_strategy(
    "d2_pruning", "engine.selection.d2:d2_pruning",
    "D2-pruning (Maharana et al. 2024): scores passed over a kNN graph of the embeddings, then diverse sampling",
    needs_embeddings=True, options={
        "n_neighbor": integer(5, "neighbours per sample in the kNN graph", 1),
        "gamma": number(0.1, "reverse-message decay exp(-gamma*d); 0 = 1/embedding width", 0),
        "mode": choice("sum", "forward pass: a node's score added to (sum) or multiplying (product) its neighbours' "
                       "messages", ("sum", "product")),
        "graph": choice("symmetric", "symmetric: j ~ i when either is among the other's k nearest (sampling.py's "
                        "in-memory path); directed: each node's own k (its precomputed-graph path)",
                        ("symmetric", "directed"))},
    doc=MethodDoc(
        formula=("a kNN graph (k = `n_neighbor`, 5) of the embeddings, made symmetric; forward pass: d_i = s_i + "
                 'Σ_{j ~ i} exp(−‖x_i − x_j‖)·max(s_j, 1e-7) (mode = "sum"; "product": s_i · Σ…); then repeatedly '
                 "pick the densest node and lower every neighbour j of it by exp(−γ·‖x_i − x_j‖)·(the pick's "
                 "density), γ = `gamma` (0.1; 0: 1/embedding width). The defaults are the README's recipe "
                 "(`--graph-mode sum --graph-sampling-mode weighted --n-neighbor 5 --gamma 0.1`)"),
        paper="maharana2024", code="adymaharana/d2pruning: core/data/sampling.py",
        differences=(
            ("The budget is global: the README's recipe also stratifies the scores CCS-style (`--stratas 25`, "
             "`--mis-ratio 0.4`, `--label-balanced`), which prunelab's `ccs` does on its own, not inside D2."),
            ("The kNN search runs in float32 row blocks (sklearn's `kneighbors_graph` and a dense pairwise matrix "
             "in the reference), so a near-tie for the k-th neighbour can resolve differently; the edge lengths "
             "are float64."),
            ('graph = "directed" is the reference\'s precomputed-graph path (used for ImageNet): each node\'s own k '
             "neighbours, no 1e-7 floor. Its `median` graph mode and `absolute` sampling mode are not here."),
            ("The reference drops an edge whose weight exp(−d)·max(s, 1e-7) underflows to 0 (d > ~720) from the "
             "reverse pass; prunelab keeps it."),
        ),
        tests=(
            "tests/engine/selection/test_d2.py::test_d2_pruning_matches_an_independent_dense_loop",
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
