import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import pytest
from engine_fixtures import RUNTIMES


@pytest.fixture(params=RUNTIMES)
def runtime(request) -> str:
    """Every engine test that takes it runs once per device and dtype (engine_fixtures)."""
    return request.param
