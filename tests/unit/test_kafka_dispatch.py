"""The Kafka transport's pure parts: topic names per queue and band, offsets to commit."""

from __future__ import annotations

from dataclasses import dataclass

from conveyor.transport import kafka as topics
from conveyor.transport.kafka_worker import offsets_to_commit


def test_topic_names_keep_queues_and_bands_apart() -> None:
    assert topics.jobs_topic("conveyor", "emails") == "conveyor.jobs.emails"
    assert topics.jobs_topic("conveyor", "emails", topics.HIGH) == "conveyor.jobs-high.emails"
    assert topics.jobs_topic("conveyor", "emails", topics.LOW) == "conveyor.jobs-low.emails"
    # A queue named like another's band stays apart (the band comes before the queue).
    assert topics.jobs_topic("conveyor", "a.low") != topics.jobs_topic("conveyor", "a", "low")
    colon = topics.jobs_topic("conveyor", "a:b")
    assert ":" not in colon and colon != topics.jobs_topic("conveyor", "a-b")
    assert colon != topics.jobs_topic("conveyor", "a:c")


def test_priority_bands() -> None:
    assert [topics.band_of(p) for p in (7, 1, 0, -1, -9)] == [
        "high", "high", "normal", "low", "low"
    ]  # fmt: skip
    assert topics.BANDS == ("high", "normal", "low")  # the order a worker takes them in


@dataclass
class Record:
    topic: str
    partition: int
    offset: int


def test_offsets_to_commit_are_one_past_the_last_record_per_partition() -> None:
    records = [Record("t", 0, 5), Record("t", 1, 2), Record("t", 0, 6), Record("u", 0, 0)]
    assert offsets_to_commit(records) == {("t", 0): 7, ("t", 1): 3, ("u", 0): 1}
    assert offsets_to_commit([]) == {}
