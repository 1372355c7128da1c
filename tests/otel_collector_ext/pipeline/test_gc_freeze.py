"""The objects alive when collection is first configured leave the cyclic GC's reach."""

from __future__ import annotations

import pytest

from tests.conftest import run_python

CODE = """
import gc, tempfile
import otel_collector_ext as oce
before = gc.get_freeze_count()
with tempfile.TemporaryDirectory() as d:
    oce.configure({"exporter": {"type": "avro", "destination": d}})
    first = gc.get_freeze_count()
    oce.configure({"exporter": {"type": "avro", "destination": d}})
    print(before, first, gc.get_freeze_count())
    oce.shutdown()
"""


@pytest.mark.parametrize(("setting", "frozen"), [(None, True), ("false", False)])
def test_first_configuration_freezes_once(setting: str | None, frozen: bool) -> None:
    env = {} if setting is None else {"OTEL_COLLECTOR_EXT_GC_FREEZE": setting}
    done = run_python(CODE, **env)
    assert done.returncode == 0, done.stderr
    before, first, second = map(int, done.stdout.split())
    assert before == 0
    if frozen:  # the modules and the pipeline at least; a second configure() adds nothing
        assert first > 10_000 and second <= first  # (frozen objects may still die)
    else:
        assert first == second == 0
