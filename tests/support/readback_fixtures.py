"""The read-back data set as a session fixture (``pytest_plugins = ["tests.support.readback_fixtures"]``).

Built once per test session; tests only read it (those that damage files copy it first).
"""

from __future__ import annotations

import pytest

from tests.support.readback_data import DataSet, build


@pytest.fixture(scope="session")
def collected(tmp_path_factory: pytest.TempPathFactory) -> DataSet:
    return build(tmp_path_factory.mktemp("collected"))
