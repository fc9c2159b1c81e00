"""Config: presets, overrides, and one clear line with exit 2 for each bad config."""
import json
import subprocess
import sys
import tomllib

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.config import Config, choices_for, config_from_dict, describe, load_config, preset_names
from engine.errors import ConfigError
from engine.selection.registry import STRATEGIES, check_strategy


def test_presets_load_and_round_trip(tmp_path):
    assert {"quick", "seed-mnist", "seed-cifar10"} <= set(preset_names())
    for name in preset_names():
        cfg = load_config(name)
        path = tmp_path / f"{name}.toml"
        path.write_text(cfg.to_toml())
        assert load_config(path) == cfg
    assert load_config("quick").data.dataset == "mnist-mini"


def test_overrides_parse_toml_values():
    cfg = load_config("quick", ["sweep.keep_ratios=[0.25, 0.5]", "train.lr=0.1", "data.dataset=mnist",
                                "sweep.methods=['loss']", "name=my study", "train.nesterov=false"])
    assert cfg.sweep.keep_ratios == [0.25, 0.5] and cfg.train.lr == 0.1 and cfg.data.dataset == "mnist"
    assert cfg.sweep.methods == ["loss"] and cfg.name == "my study" and cfg.train.nesterov is False
    assert load_config("quick", {"sweep.seeds": [3]}).sweep.seeds == [3]


# ---------------------------------------------------------------- lists typed as text (issue 26, item 2)
LIST_TEXTS = ["[random,el2n]", "random,el2n", " random , el2n ", '["random", "el2n"]', "['random','el2n']"]


@pytest.mark.parametrize("text", LIST_TEXTS)
def test_a_list_field_takes_a_comma_or_bracket_list_of_bare_words(text, tmp_path):
    """--set, a TOML string where a list is expected, and the TUI form's dict (config_from_dict) all take it."""
    assert load_config("quick", [f"sweep.methods={text}"]).sweep.methods == ["random", "el2n"]
    path = tmp_path / "c.toml"
    path.write_text(f"[sweep]\nmethods = {json.dumps(text)}\n")  # a TOML string (JSON's escapes are TOML's)
    assert load_config(path).sweep.methods == ["random", "el2n"]
    assert config_from_dict({"sweep": {"methods": text}}).sweep.methods == ["random", "el2n"]


def test_text_lists_convert_their_items_to_the_field_type_and_keep_words_the_field_takes():
    cfg = load_config("quick", ["sweep.keep_ratios=0.3,0.5", "sweep.seeds=3", "sweep.score_epochs=[0,1]",
                                "plugins="])
    assert cfg.sweep.keep_ratios == [0.3, 0.5] and cfg.sweep.seeds == [3] and cfg.sweep.score_epochs == [0, 1]
    assert cfg.plugins == []
    bench = config_from_dict({"kind": "benchmark", "benchmark": {"methods": "loss, el2n/kcenter_greedy"}})
    assert bench.benchmark.methods == ["loss", "el2n/kcenter_greedy"]  # the TUI form's text box, as typed
    assert load_config("quick", ["kind=benchmark", "benchmark.methods=all"]).benchmark.methods == "all"
    assert config_from_dict({"study": {"parts": "overlap,prune"}}).study.parts == ["overlap", "prune"]
    with pytest.raises(ConfigError, match=r"sweep.keep_ratios\[1\]: Input should be a valid number.*'abc'"):
        load_config("quick", ["sweep.keep_ratios=0.3,abc"])
    with pytest.raises(ConfigError, match="sweep.methods: unknown scorer 'magic'"):
        load_config("quick", ["sweep.methods=loss,magic"])


def test_list_text_on_the_command_line(in_tmp):
    result = CliRunner().invoke(main, ["config", "check", "quick", "--set", "sweep.methods=[random,el2n]",
                                       "--set", "sweep.keep_ratios=0.3,0.5"])
    assert result.exit_code == 0, result.output
    shown = tomllib.loads(result.output)  # the resolved config as TOML; its last line a comment
    assert shown["sweep"]["methods"] == ["random", "el2n"] and shown["sweep"]["keep_ratios"] == [0.3, 0.5]


BAD = [
    (["--set", "sweep.colour=red"], "unknown key 'colour' in [sweep]"),
    (["--set", "sweep.methods=['loss','magic']"], "sweep.methods: unknown scorer 'magic'"),
    (["--set", "sweep.strategies=['greedy']"], "sweep.strategies: unknown selection strategy 'greedy'"),
    (["--set", "data.dataset=imagenet"], "data.dataset: unknown dataset 'imagenet'"),
    (["--set", "sweep.keep_ratios=[0.5,1.5]"], "sweep.keep_ratios: keep ratio 1.5 is outside (0, 1]"),
    (["--set", "sweep.keep_ratios=[0]"], "keep ratio 0 is outside (0, 1]"),
    (["--set", "sweep.score_epochs=[5]"], "beyond the surrogate's budget of 1 epochs"),
    (["--set", "train.epochs=many"], "train.epochs: Input should be a valid integer"),
    (["--set", "selection.beta=2.0"], "beta = 2.0 is out of range"),
    (["--set", "kind=nonsense"], "kind: unknown experiment kind 'nonsense'"),
    (["--preset", "nope"], "unknown preset 'nope'"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[m for _, m in BAD])
def test_bad_config_in_python(args, message):
    overrides = [args[1]] if args[0] == "--set" else []
    preset = args[1] if args[0] == "--preset" else "quick"
    with pytest.raises(ConfigError) as info:
        load_config(preset, overrides)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_config_on_the_command_line_exits_2(in_tmp):
    for args, message in BAD[:4] + BAD[6:8]:
        proc = subprocess.run([sys.executable, "-m", "engine.cli", "run", "--preset", "quick", *args],
                              capture_output=True, text=True, check=False)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], proc.stderr
    bad = in_tmp / "bad.toml"
    bad.write_text('name = "x"\n[sweep]\nkeep_ratios = { half = 0.5 }\n')
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "run", str(bad)], capture_output=True, text=True, check=False)
    expected = "bad.toml: sweep.keep_ratios: Input should be a valid list; write a list as a,b or [a, b]"
    assert proc.returncode == 2 and expected in proc.stderr


def test_config_show_prints_a_preset():
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "config", "show", "quick"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and 'dataset = "mnist-mini"' in proc.stdout


# ---------------------------------------------------------------- [selection.NAME] tables
# a config stored with a run before strategies had their own tables (`--resume` re-reads it)
OLD_FLAT = """name = "old"
kind = "benchmark"
[surrogate]
epochs = 1
[selection]
per_class = true
beta = 0.2
[benchmark]
methods = ["el2n/ccs", "el2n/craig", "el2n/kcenter_greedy"]
"""


def test_an_old_flat_selection_table_keeps_its_meaning_and_round_trips_in_the_new_form(tmp_path):
    old = tmp_path / "old.toml"
    old.write_text(OLD_FLAT)
    cfg = load_config(old)
    flat = {"per_class": True, "beta": 0.2}
    for name, strategy in STRATEGIES.items():  # the old meaning: each strategy reads the flat keys it declares
        assert cfg.strategy_options(name) == {k: v for k, v in flat.items() if k in strategy.options}, name
    assert cfg.strategy_options("craig") == {"per_class": True} and cfg.strategy_options("hardest") == {}
    assert config_from_dict(tomllib.loads(OLD_FLAT)) == cfg  # as the runner reads a stored config.toml
    new = tmp_path / "new.toml"
    new.write_text(cfg.to_toml())
    assert "[selection.craig]" in new.read_text() and "\nper_class" not in new.read_text().split("[selection.")[0]
    assert load_config(new) == cfg


def test_each_strategy_has_its_own_table_and_it_wins_over_a_flat_key():
    cfg = load_config("quick", ["selection.kcenter_greedy.per_class=true", "selection.craig.per_class=false"])
    assert cfg.strategy_options("kcenter_greedy") == {"per_class": True}  # k-center's reference: per class off
    assert cfg.strategy_options("craig") == {"per_class": False}  # CRAIG's: per class on; each its own
    assert cfg.strategy_options("herding") == {}  # untouched: its default
    mixed = load_config("quick", {"selection": {"per_class": True, "craig": {"per_class": False, "greedy": "plain"}}})
    assert mixed.strategy_options("craig") == {"per_class": False, "greedy": "plain"}
    assert mixed.strategy_options("herding") == {"per_class": True}


BAD_SELECTION = [
    ("selection.ccs.beta=2.0", ("selection strategy 'ccs': option beta = 2.0 is out of range; use a number with "
                                "0 <= beta < 1")),
    ("selection.craig.colour=1", ("selection strategy 'craig' has no option 'colour'; its options are: per_class, "
                                  "greedy, epsilon, weighted")),
    ("selection.hardest.beta=0.1", "selection strategy 'hardest' has no option 'beta'; it takes no options"),
    ("selection.nope.beta=0.1", "unknown selection strategy 'nope'"),
    ("selection.colour=1", "'colour' is neither a strategy nor an option of one"),
    ("selection.beta=2.0", "option beta = 2.0 is out of range"),  # the old flat form is checked the same way
]


@pytest.mark.parametrize("assignment, message", BAD_SELECTION, ids=[a for a, _ in BAD_SELECTION])
def test_bad_strategy_options_are_one_line_naming_the_strategy_and_exit_2(assignment, message):
    with pytest.raises(ConfigError) as err:
        load_config("quick", [assignment])
    assert str(err.value).startswith("preset quick: selection: ") and message in str(err.value)
    result = CliRunner().invoke(main, ["config", "check", "quick", "--set", assignment])
    assert result.exit_code == 2 and result.output.strip().count("\n") == 0 and message in result.output


def test_config_show_lists_the_tables_of_the_strategies_a_config_uses(tmp_path):
    shown = CliRunner().invoke(main, ["config", "show", "benchmark-mnist"])
    assert shown.exit_code == 0
    tables = tomllib.loads(shown.output)["selection"]
    used = load_config("benchmark-mnist").used_strategies()  # "all": every strategy
    assert set(tables) == {s for s in used if STRATEGIES[s].options} and "craig" in tables and "hardest" not in tables
    assert all(table == check_strategy(name, {}) for name, table in tables.items())  # at their defaults
    assert ("[selection.craig]\n# split the budget over classes in proportion to their sizes (true or false)\n"
            "per_class = true\n") in shown.output
    mine = tmp_path / "mine.toml"
    mine.write_text('[sweep]\nstrategies = ["craig", "ccs"]\n[selection.craig]\nper_class = false\n')
    shown = CliRunner().invoke(main, ["config", "show", str(mine)])
    assert shown.exit_code == 0 and shown.output.count("[selection.craig]") == 1  # the file's own, with help
    assert "# split the budget over classes in proportion to their sizes (true or false)\nper_class = false" \
           in shown.output
    assert tomllib.loads(shown.output)["selection"] == {"craig": {"per_class": False}, "ccs": {"beta": 0.0, "bins": 50}}


# ---------------------------------------------------------------- sections and the checks across them
@pytest.mark.parametrize("kind, assignment, message", [
    ("prune", "sweep.score_epochs=[5]", "sweep.score_epochs has epoch 5 beyond the surrogate's budget of 1 epochs"),
    ("noise", "sweep.score_epochs=[5]", "sweep.score_epochs has epoch 5 beyond"),  # noise reads [sweep] too
    ("dynamic", "sweep.score_epochs=[5]", None),  # a section its kind never reads: never checked
    ("overlap", "overlap.epoch=3", "overlap.epoch has epoch 3 beyond"),
    ("study", "overlap.epoch=3", "overlap.epoch has epoch 3 beyond"),
    ("prune", "overlap.epoch=3", None),
    ("study", "study.score_epochs=[0,4]", "study.score_epochs has epoch 4 beyond"),
])
def test_checks_across_sections_run_for_the_sections_the_kind_reads(kind, assignment, message):
    if message is None:
        assert load_config("quick", [f"kind={kind}", assignment]).kind == kind
        return
    with pytest.raises(ConfigError) as err:
        load_config("quick", [f"kind={kind}", assignment])
    assert str(err.value).startswith(f"preset quick: {message}")  # the message names its field first


def test_shared_field_types_check_every_section_alike():
    ratio = "keep ratio 1.5 is outside (0, 1]; use fractions such as 0.3 or 0.7"
    for field in ("sweep.keep_ratios", "study.keep_ratios", "benchmark.keep_ratios"):
        with pytest.raises(ConfigError, match=None) as err:
            load_config("quick", [f"{field}=[0.5, 1.5]"])
        assert str(err.value) == f"preset quick: {field}: {ratio}"
    for field in ("sweep.methods", "overlap.methods", "noise.methods", "study.methods", "online.methods"):
        with pytest.raises(ConfigError) as err:
            load_config("quick", [f"{field}=['loss', 'magic']"])
        assert f"{field}: unknown scorer 'magic'" in str(err.value)
    with pytest.raises(ConfigError, match="online.methods: scorer 'forgetting' comes from surrogate training"):
        load_config("quick", ["online.methods=['forgetting']"])  # a batch scorer only: its own type


def test_choices_and_the_kind_help_come_from_the_registries():
    from engine.kinds import KINDS
    from engine.scoring.registry import SCORERS

    assert choices_for("kind") == sorted(KINDS) and "score-epochs" in choices_for("kind")
    assert choices_for("sweep.methods") == choices_for("overlap.methods") == choices_for("noise.methods") == \
        sorted(SCORERS)
    assert choices_for("sweep.strategies") == sorted(STRATEGIES) and "mlp" in choices_for("model")
    assert "mnist-mini" in choices_for("data.dataset")
    assert choices_for("train.lr") == choices_for("sweep.keep_ratios") == choices_for("nope.x") == []
    assert describe("kind") == ", ".join(list(KINDS)[:-1]) + f" or {list(KINDS)[-1]}"
    assert describe("sweep.methods") == "scorers to compare" and describe("train.lr") == ""


def test_a_config_built_in_python_fills_and_checks_its_sections():
    from engine.kinds import SweepConfig

    cfg = Config(kind="online", online={"keep": 16, "batch_size": 64})
    assert cfg.online.keep == 16 and cfg.online.batch_size == 64 and cfg.online.eval_every == 50
    assert cfg.sweep == SweepConfig() and cfg.sweep.methods == ["random", "loss", "grad_norm"]  # at its defaults
    with pytest.raises(ConfigError) as err:
        Config(kind="online", online={"keep": 65, "batch_size": 64})
    assert str(err.value) == "online: keep=65 is larger than batch_size=64; k must be at most B"
    part = cfg.model_copy(update={"sweep": cfg.sweep.model_copy(update={"methods": ["loss"]})})
    assert part.sweep.methods == ["loss"] and cfg.sweep.methods == ["random", "loss", "grad_norm"]
    assert part.model_dump()["sweep"]["methods"] == ["loss"]


def test_config_kinds_lists_every_registered_kind_and_the_sections_it_reads():
    from engine.kinds import KINDS

    listed = CliRunner().invoke(main, ["config", "kinds"])
    assert listed.exit_code == 0
    lines = {line.split()[0]: line for line in listed.output.splitlines()}
    assert list(lines) == list(KINDS)
    assert lines["study"].endswith("reads [study], [overlap], [sweep]") and lines["prune"].endswith("reads [sweep]")
