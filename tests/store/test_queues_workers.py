from __future__ import annotations

from datetime import timedelta

from conveyor.domain.records import QueueSettings, WorkerInfo
from conveyor.store import Store
from tests.helpers import utcnow, wait_until

# -- queue settings -----------------------------------------------------------------------


async def test_queue_settings_default_when_no_row(store: Store) -> None:
    settings = await store.get_queue_settings("never-configured")
    assert settings == QueueSettings(name="never-configured")
    assert (settings.paused, settings.max_depth, settings.concurrency) == (False, None, None)


async def test_queue_settings_round_trip(store: Store) -> None:
    saved = await store.set_queue_settings(
        QueueSettings(name="mail", paused=True, max_depth=100, concurrency=4)
    )
    assert saved == QueueSettings(name="mail", paused=True, max_depth=100, concurrency=4)
    assert await store.get_queue_settings("mail") == saved

    updated = await store.set_queue_settings(QueueSettings(name="mail", concurrency=8))
    assert updated == QueueSettings(name="mail", paused=False, max_depth=None, concurrency=8)
    assert await store.get_queue_settings("mail") == updated


async def test_list_queue_settings(store: Store) -> None:
    await store.set_queue_settings(QueueSettings(name="a", paused=True))
    await store.set_queue_settings(QueueSettings(name="b", max_depth=5))
    listed = {q.name: q for q in await store.list_queue_settings() if q.name in ("a", "b")}
    assert listed == {
        "a": QueueSettings(name="a", paused=True),
        "b": QueueSettings(name="b", max_depth=5),
    }


# -- workers ------------------------------------------------------------------------------


def _worker(wid: str, **kw) -> WorkerInfo:
    now = utcnow().replace(microsecond=0)
    defaults = dict(
        hostname="host-1",
        pid=1234,
        queues=["default", "mail"],
        concurrency=8,
        started_at=now,
        last_seen_at=now,
        meta={"version": "0.1.0", "labels": {"zone": "eu-1"}},
    )
    defaults.update(kw)
    return WorkerInfo(id=wid, **defaults)


async def test_register_and_list_workers(store: Store) -> None:
    info = _worker("w1")
    await store.register_worker(info)
    (listed,) = await store.list_workers()
    assert listed.id == "w1"
    assert (listed.hostname, listed.pid, listed.concurrency) == ("host-1", 1234, 8)
    assert listed.queues == ["default", "mail"]
    assert listed.meta == {"version": "0.1.0", "labels": {"zone": "eu-1"}}
    assert listed.running == 0
    assert listed.started_at == info.started_at
    assert listed.last_seen_at.tzinfo is not None


async def test_register_replaces_the_row(store: Store) -> None:
    await store.register_worker(_worker("w1", concurrency=8))
    await store.register_worker(_worker("w1", concurrency=2, pid=99))
    (listed,) = await store.list_workers()
    assert (listed.concurrency, listed.pid) == (2, 99)


async def test_touch_worker(store: Store) -> None:
    await store.register_worker(_worker("w1"))
    (before,) = await store.list_workers()

    async def touched() -> bool:
        await store.touch_worker("w1", running=3)
        (w,) = await store.list_workers()
        return w.running == 3 and w.last_seen_at > before.last_seen_at

    await wait_until(touched, timeout=5, message="touch to set running and last_seen_at")


async def test_deregister_worker(store: Store) -> None:
    await store.register_worker(_worker("w1"))
    await store.register_worker(_worker("w2"))
    await store.deregister_worker("w1")
    assert [w.id for w in await store.list_workers()] == ["w2"]
    await store.deregister_worker("unknown")  # no error


async def test_prune_workers_seen_before(store: Store) -> None:
    await store.register_worker(_worker("stale"))
    await store.register_worker(_worker("fresh"))
    await store.touch_worker("stale", 0)
    await store.touch_worker("fresh", 0)
    (stale,) = [w for w in await store.list_workers() if w.id == "stale"]
    # touch "fresh" until its last_seen_at is strictly after stale's
    cutoff = stale.last_seen_at + timedelta(microseconds=1)

    async def fresh_is_newer() -> bool:
        await store.touch_worker("fresh", 1)
        fresh = next(w for w in await store.list_workers() if w.id == "fresh")
        return fresh.last_seen_at >= cutoff

    await wait_until(fresh_is_newer, timeout=5, message="a later last_seen_at")
    assert await store.prune_workers(cutoff) == 1
    assert [w.id for w in await store.list_workers()] == ["fresh"]
    assert await store.prune_workers(cutoff) == 0
