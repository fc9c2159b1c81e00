"""Same results, bit for bit: reduced quick, benchmark, dynamic and online runs and every scorer, against the
values recorded before the core was reshaped (tests/engine/golden.py says how they were made)."""
import json

import pytest

from tests.conftest import torch_threads
from tests.engine.golden import CONFIGS, RECORD, gradient_record, run_record, score_record

EXPECTED = json.loads(RECORD.read_text())


def differences(got, want, path=""):
    """Every path whose value differs, so a failure names what changed rather than 'dicts differ'."""
    if isinstance(want, dict) and isinstance(got, dict):
        out = [f"{path}{k}: missing" for k in want.keys() - got.keys()]
        out += [f"{path}{k}: not recorded" for k in got.keys() - want.keys()]
        for k in want.keys() & got.keys():
            out += differences(got[k], want[k], f"{path}{k}/")
        return out
    if isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        return [d for i, (g, w) in enumerate(zip(got, want)) for d in differences(g, w, f"{path}{i}/")]
    return [] if got == want else [f"{path}: {got!r} != recorded {want!r}"]


@pytest.fixture
def two_threads():
    """The record was made with 2 intra-op threads; reductions may round differently with another count."""
    with torch_threads(2):
        yield


@pytest.mark.parametrize("name", list(CONFIGS))
def test_run_equals_the_record_bit_for_bit(name, tmp_path, fresh_store, two_threads):
    fresh_store(tmp_path / "mlruns" / "mlflow.db")
    preset, overrides = CONFIGS[name]
    diff = differences(run_record(preset, overrides, tmp_path), EXPECTED[name])
    assert not diff, "\n".join(sorted(diff)[:40])


def test_every_scorer_equals_the_record_bit_for_bit(two_threads):
    diff = differences(score_record(), EXPECTED["score"])
    assert not diff, "\n".join(sorted(diff)[:40])


def test_gradient_embeddings_equal_the_record_bit_for_bit(two_threads):
    diff = differences(gradient_record(), EXPECTED["gradients"])
    assert not diff, "\n".join(sorted(diff)[:40])
