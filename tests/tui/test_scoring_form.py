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
