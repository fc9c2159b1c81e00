"""Config sections a kind registers: validated in every config, checked against the config when the kind reads
them, logged and shown only for that kind, and refused when they could not work."""
import subprocess
import sys

import pytest
from pydantic import BaseModel, Field

from engine.config import Config, load_config
from engine.errors import ConfigError
from engine.kinds import KINDS, ExperimentKind, register_kind, used_config
from engine.sections import SECTIONS, KeepRatios, ScorerNames, Section, register_section, within_budget


class ToyConfig(Section):
    """[toy]: a section as a plugin's kind declares it."""

    methods: ScorerNames = Field(["loss"], min_length=1, description="scorers of the toy")
    ratios: KeepRatios = Field([0.5], min_length=1, description="keep ratios of the toy")
    epoch: int = Field(0, ge=0, description="a surrogate epoch")

    def check_config(self, config) -> None:
        within_budget(config, "toy.epoch", [self.epoch])

    def used_strategies(self) -> list[str]:
        return ["ccs"]


@pytest.fixture
def toy():
    """The `toy` kind, reading [toy] and [sweep]; removed again after the test."""
    register_section("toy", ToyConfig)
    register_kind(ExperimentKind("toy", "a toy kind", lambda config: 0, lambda ctx: [], ("toy", "sweep")))
    yield ToyConfig
    KINDS.pop("toy")
    SECTIONS.pop("toy")


def test_a_registered_section_is_in_every_config_at_its_defaults_and_validated(toy):
    cfg = load_config("quick")
    assert cfg.toy == ToyConfig() and cfg.toy.methods == ["loss"]
    given = load_config("quick", {"kind": "toy", "toy.methods": ["el2n", "loss"], "toy.epoch": 1})
    assert given.toy.methods == ["el2n", "loss"] and given.toy.epoch == 1
    for assignment, message in [("toy.ratios=[1.5]", "preset quick: toy.ratios: keep ratio 1.5 is outside (0, 1]"),
                                ("toy.methods=['magic']", "preset quick: toy.methods: unknown scorer 'magic'"),
                                ("toy.colour=1", "preset quick: unknown key 'colour' in [toy]"),
                                ("toy.epoch=-1", "preset quick: toy.epoch: Input should be greater than or equal")]:
        with pytest.raises(ConfigError) as err:
            load_config("quick", [assignment])
        assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_its_check_runs_only_for_the_kinds_that_read_it(toy):
    assert load_config("quick", {"toy.epoch": 5}).toy.epoch == 5  # a prune run never reads [toy]
    with pytest.raises(ConfigError, match=r"^preset quick: toy.epoch has epoch 5 beyond the surrogate's budget"):
        load_config("quick", {"kind": "toy", "toy.epoch": 5})
    with pytest.raises(ConfigError, match=r"^preset quick: sweep.score_epochs has epoch 3 beyond"):
        load_config("quick", {"kind": "toy", "sweep.score_epochs": [3]})  # and the other section it reads


def test_a_run_logs_and_shows_only_the_sections_its_kind_reads(toy, tmp_path):
    cfg = load_config("quick", {"kind": "toy"})
    assert cfg.read_sections() == ["sweep", "toy"]
    assert {"sweep", "toy"} <= set(used_config(cfg)) and not {"overlap", "online", "dynamic"} & set(used_config(cfg))
    assert "toy" not in used_config(load_config("quick"))
    assert cfg.used_strategies() == ["hardest", "ccs"]  # sweep's strategies, then the toy's
    path = tmp_path / "toy.toml"
    path.write_text(cfg.model_copy(update={"toy": ToyConfig(epoch=1)}).to_toml())
    again = load_config(path)
    assert again.toy.epoch == 1 and "[toy]" in path.read_text() and again.model_dump()["toy"]["epoch"] == 1


def test_a_section_registered_after_a_config_was_made_reads_at_its_defaults():
    cfg = load_config("quick")
    register_section("late", ToyConfig)
    try:
        assert cfg.late == ToyConfig() and load_config("quick").late == ToyConfig()
        with pytest.raises(AttributeError):
            _ = cfg.not_a_section
    finally:
        SECTIONS.pop("late")


class NeedsValue(Section):
    value: int  # no default: a config that does not name the section could not be made


class Plain(BaseModel):
    value: int = 1


@pytest.mark.parametrize("name, model, message", [
    ("train", ToyConfig, "section name 'train' is a config field"),
    ("two words", ToyConfig, "section name 'two words' is not a name"),
    ("plain", Plain, "section 'plain': give a subclass of engine.Section"),
    ("needs", NeedsValue, "section 'needs': field 'value' needs a default"),
])
def test_a_section_that_could_not_work_is_refused_at_registration(name, model, message):
    with pytest.raises(ConfigError, match=message):
        register_section(name, model)
    assert name not in SECTIONS


def test_a_kind_reading_an_unregistered_section_is_refused():
    with pytest.raises(ConfigError, match=r"kind 'ghost' reads \[nowhere\], which is not a registered section"):
        register_kind(ExperimentKind("ghost", "reads nothing real", lambda c: 0, lambda ctx: [], ("nowhere",)))
    assert "ghost" not in KINDS


def test_kind_modules_may_be_strings_and_the_kind_is_valid_everywhere(toy):
    kind = register_kind(ExperimentKind("toy2", "lazily imported", "engine.kinds.prune:count_trials",
                                        "engine.kinds.prune:execute", ("sweep",)))
    try:
        cfg = load_config("quick", {"kind": "toy2"})
        assert kind.count_trials(cfg) == KINDS["prune"].count_trials(cfg) == 14  # the quick preset's grid
        assert "toy2" in Config.model_fields["kind"].metadata[-1].names()
    finally:
        KINDS.pop("toy2")


def test_validating_every_built_in_kind_loads_no_torch():
    code = ("import sys; from engine.config import load_config; from engine.kinds import KINDS\n"
            "for kind in KINDS:\n    load_config('quick', {'kind': kind, 'surrogate.epochs': 2}).used_strategies()\n"
            "print(sorted(m for m in ('torch', 'matplotlib', 'mlflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr
