"""The polling helpers say why they timed out: the condition's last exception, chained."""
import asyncio

import pytest

from tests.polling import WaitTimeout, wait_until
from tests.tui.tui_helpers import wait_for


def test_wait_until_returns_the_value_and_re_raises_the_last_error_on_timeout():
    calls = []

    def ready():
        calls.append(1)
        return len(calls) >= 3 and "done"

    assert wait_until(ready, 5, "three calls", interval=0) == "done" and len(calls) == 3

    def broken():
        raise KeyError("trial 7")

    with pytest.raises(WaitTimeout, match=r"waiting for the run.*KeyError: 'trial 7'") as info:
        wait_until(broken, 0.05, "the run", interval=0.01)
    assert isinstance(info.value.__cause__, KeyError)
    with pytest.raises(WaitTimeout, match="last value 0") as info:
        wait_until(lambda: 0, 0.05, "a count", interval=0.01)
    assert info.value.__cause__ is None


def test_the_tui_wait_for_chains_the_last_error_too():
    class Pilot:
        async def pause(self, delay):
            await asyncio.sleep(0)

    def unmounted():
        raise LookupError("no widget #runs")

    with pytest.raises(WaitTimeout, match="#runs") as info:
        asyncio.run(wait_for(Pilot(), unmounted, timeout=0.05, what="the runs table"))
    assert isinstance(info.value.__cause__, LookupError)
