"""The New-experiment form's `scoring` field: per-scorer tables as one text box, their errors under it."""
import pytest

from engine.config import Config, config_from_dict
from engine.errors import ConfigError
from tui.config_fields import error_target, field_specs, format_value, parse_text


def test_scorer_tables_round_trip_through_the_form_and_errors_land_on_the_field():
    specs = {s.path: s for s in field_specs(Config)}
    spec = specs["scoring"]
    assert spec.kind == "dict" and "prunelab scorers" in spec.description
    value = {"tdds": {"window": 5, "decay": 0.5}, "aum": {"margin": "softmax"}}
    text = format_value(spec, value)
    assert text == '{ tdds = { window = 5, decay = 0.5 }, aum = { margin = "softmax" } }'
    assert parse_text(spec, text) == value and parse_text(spec, "") == {}
    assert config_from_dict({"scoring": parse_text(spec, text)}).scorer_options(["tdds"]) == {"tdds": value["tdds"]}
    with pytest.raises(ConfigError) as err:
        config_from_dict({"scoring": parse_text(spec, "{ tdds = { windw = 5 } }")})
    assert error_target(str(err.value), list(specs))[0] == "scoring"
    assert "its options are: window, trajectory, decay" in str(err.value)


def test_strategy_tables_round_trip_through_the_form_and_errors_land_on_the_field():
    specs = {s.path: s for s in field_specs(Config)}
    spec = specs["selection"]
    assert spec.kind == "dict" and "[selection.ccs]" in spec.description
    value = {"craig": {"per_class": False, "greedy": "plain"}, "ccs": {"beta": 0.2}}
    text = format_value(spec, value)
    assert text == '{ craig = { per_class = false, greedy = "plain" }, ccs = { beta = 0.2 } }'
    assert parse_text(spec, text) == value
    config = config_from_dict({"selection": parse_text(spec, text)})
    assert config.strategy_options("craig") == value["craig"] and config.strategy_options("herding") == {}
    old = config_from_dict({"selection": parse_text(spec, "per_class = false")})  # the old flat form, typed in
    assert old.strategy_options("herding") == old.strategy_options("craig") == {"per_class": False}
    with pytest.raises(ConfigError) as err:
        config_from_dict({"selection": parse_text(spec, "{ craig = { per_clas = false } }")})
    assert error_target(str(err.value), list(specs))[0] == "selection"
    assert "its options are: per_class, greedy, epsilon, weighted" in str(err.value)


def test_the_form_sections_come_from_the_section_registry():
    from pydantic import Field

    from engine.kinds import KINDS, ExperimentKind, register_kind
    from engine.scoring.registry import SCORERS
    from engine.sections import SECTIONS, ScorerNames, Section, register_section

    class ToyConfig(Section):
        methods: ScorerNames = Field(["loss"], description="scorers of the toy")
        rounds: int = Field(3, ge=1, description="rounds of the toy")

    register_section("toy", ToyConfig)
    register_kind(ExperimentKind("toy", "a toy kind", lambda c: 0, lambda ctx: [], ("toy",)))
    try:
        specs = field_specs(Config)
        paths = [s.path for s in specs]
        toy = {s.path: s for s in specs if s.section == "toy"}
        assert list(toy) == ["toy.methods", "toy.rounds"]  # its fields, in declaration order
        assert toy["toy.methods"].suggestions == sorted(SCORERS) and toy["toy.rounds"].description == "rounds of the toy"
        assert paths.index("surrogate.gradient_mb") < paths.index("sweep.methods") < paths.index("toy.methods") < \
            paths.index("selection")  # the registered sections after the ones every kind reads
        kind = next(s for s in specs if s.path == "kind")
        assert "toy" in kind.suggestions and kind.description.endswith(" or toy")
        values = config_from_dict({"kind": "toy", "toy": {"rounds": 5}}).model_dump(mode="json")
        assert values["toy"] == {"methods": ["loss"], "rounds": 5}  # what the form fills its boxes from
    finally:
        KINDS.pop("toy")
        SECTIONS.pop("toy")
