"""Issue 18, the commands a newcomer types first, against a real SQLite store (the CLI calls the
same service as the API; the store behaviours underneath are tested on both stores in
tests/store/test_first_hour_store.py)."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import orjson
import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from conveyor import App, NewJob
from conveyor.cli.auth import dev_settings
from conveyor.cli.common import layered_settings
from conveyor.cli.main import main
from conveyor.config import Settings
from conveyor.domain.errors import SchemaMissing, Unauthenticated
from conveyor.domain.job import Job, JobStatus
from conveyor.domain.records import Failure
from conveyor.security.tokens import TokenCodec
from conveyor.service.auth import AuthService
from conveyor.store import open_store

T = TypeVar("T")


def cli(*args: str, stdin: str | None = None, **env: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), input=stdin, env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def on_app(url: str, fn: Callable[[App], Awaitable[T]], **kw: object) -> T:
    async def go() -> T:
        async with App(url, **kw) as app:  # type: ignore[arg-type]
            return await fn(app)

    return asyncio.run(go())


@pytest.fixture
def url(sqlite_url: str) -> str:
    assert cli("migrate", "--store-url", sqlite_url)[0] == 0
    return sqlite_url


# -- 1. schedule set shows the next fire times ----------------------------------------------


def test_schedule_set_prints_the_next_three_fire_times(url: str) -> None:
    code, out, err = cli(
        "schedule", "set", "heartbeat", "* * * * * */10", "demo.echo", "--store-url", url
    )
    assert code == 0, out + err
    times = [datetime.fromisoformat(t) for t in out.split("next runs ", 1)[1].strip().split(", ")]
    assert len(times) == 3
    assert [(b - a).total_seconds() for a, b in itertools.pairwise(times)] == [10.0, 10.0]
    assert all(t.second % 10 == 0 for t in times)


def test_schedule_set_no_replace_refuses_a_taken_name(url: str) -> None:
    assert cli("schedule", "set", "n", "0 3 * * *", "t", "--store-url", url)[0] == 0
    code, out, err = cli(
        "schedule", "set", "n", "0 4 * * *", "t", "--no-replace", "--store-url", url
    )
    assert code == 1 and "'n' exists" in err
    code, out, _ = cli("schedule", "list", "--store-url", url)
    assert "0 3 * * *" in out and "0 4 * * *" not in out


# -- 3. unknown types: accepted at every door, dead-lettered by the worker ------------------


def test_cli_and_app_accept_a_type_no_handler_is_registered_for(url: str) -> None:
    code, out, err = cli("enqueue", "nobody.handles.this", "--store-url", url)
    assert code == 0, out + err
    app = App(url)

    @app.job("known")
    def known(payload: object) -> None: ...

    job = on_app(url, lambda a: a.enqueue("nobody.handles.this"), settings=app.settings)
    assert job.status == JobStatus.QUEUED

    async def through_registered_app() -> Job:
        async with app:
            return await app.enqueue("nobody.handles.this")

    assert asyncio.run(through_registered_app()).status == JobStatus.QUEUED


# -- 4. enqueue_many: handler defaults, any size -----------------------------------------------


def test_enqueue_many_fills_registered_defaults_and_splits_big_batches(url: str) -> None:
    app = App(url)

    @app.job("email.send", queue="email", max_retries=7, timeout=30, priority=2)
    async def send(payload: object) -> None: ...

    async def go() -> tuple[list[Job], list[Job]]:
        async with app:
            few = await app.enqueue_many(
                [NewJob("email.send"), NewJob("email.send", queue="bulk", max_retries=1)]
            )
            many = await app.enqueue_many([NewJob("email.send", {"i": i}) for i in range(2_500)])
            return few, many

    few, many = asyncio.run(go())
    assert (few[0].queue, few[0].max_retries, few[0].timeout, few[0].priority) == (
        "email",
        7,
        30.0,
        2,
    )
    assert (few[1].queue, few[1].max_retries) == ("bulk", 1)  # explicit values stay
    assert len(many) == 2_500 and len({j.id for j in many}) == 2_500
    assert {j.queue for j in many} == {"email"}
    assert [j.payload["i"] for j in many] == list(range(2_500))


# -- 5. worker settings: flags > environment > the App's own ---------------------------------


def test_layered_settings_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    own = Settings(
        concurrency=7, lease_seconds=11.0, shutdown_grace=12.0, store_url="sqlite:///a.db"
    )
    monkeypatch.setenv("CONVEYOR_LEASE_SECONDS", "21")
    monkeypatch.setenv("CONVEYOR_SHUTDOWN_GRACE", "22")
    s = layered_settings(own, None, shutdown_grace=32.0, lease_seconds=None)
    assert s.concurrency == 7  # the App's own, untouched by anything
    assert s.lease_seconds == 21.0  # the environment over the App
    assert s.shutdown_grace == 32.0  # the flag over both
    assert s.store_url == "sqlite:///a.db"
    assert layered_settings(own, "sqlite:///b.db").store_url == "sqlite:///b.db"


# -- 7. a store without its schema -------------------------------------------------------------


def test_commands_on_a_missing_store_say_what_to_run_and_create_nothing(tmp_path: Path) -> None:
    where = tmp_path / "elsewhere" / "conveyor.db"
    url = f"sqlite:///{where}"
    for args in (
        ["enqueue", "demo.echo"],
        ["jobs", "list"],
        ["queue", "set", "email", "paused=true"],
        ["token", "create", "--name", "x", "--role", "worker"],
        ["scheduler"],
    ):
        code, out, err = cli(*args, "--store-url", url, CONVEYOR_JWT_SECRET="s" * 40)
        assert code == 1, (args, out, err)
        assert err.count("\n") == 1, err  # one line, no traceback
        assert "missing Conveyor's schema" in err and f"conveyor migrate --store-url '{url}'" in err
    assert not where.parent.exists()  # no directory, no empty database left behind
    assert cli("migrate", "--store-url", url)[0] == 0
    assert where.exists()
    assert cli("jobs", "list", "--store-url", url)[0] == 0


def test_the_library_says_the_schema_is_missing_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SchemaMissing) as info:
        asyncio.run(App("sqlite:///data/jobs.db").open())
    assert f"(the file {tmp_path / 'data' / 'jobs.db'})" in info.value.message
    assert "conveyor migrate --store-url 'sqlite:///data/jobs.db'" in info.value.message
    assert not (tmp_path / "data").exists()


# -- 8. CLI commands on the dev store sign with the dev key ----------------------------------


def test_token_create_on_the_dev_store_uses_the_dev_key(url: str) -> None:
    key = dev_settings(Settings(store_url=url)).jwt_secret  # what `conveyor dev` keeps
    assert key is not None
    code, out, err = cli(
        "token", "create", "--name", "w", "--role", "worker", "--store-url", url,
        CONVEYOR_JWT_SECRET="",
    )  # fmt: skip
    assert code == 0, out + err
    claims = TokenCodec.from_settings(Settings(jwt_secret=key)).decode(out.strip())
    assert claims.role.value == "worker"


# -- 9. a bad APP path ----------------------------------------------------------------------


def test_a_bad_app_module_is_one_line_naming_it(url: str) -> None:
    code, _out, err = cli("worker", "myservice.job:app", "--store-url", url)
    assert code == 1
    assert err.strip().count("\n") == 0, err
    assert "cannot import module 'myservice.job'" in err and "No module named 'myservice'" in err


# -- 10. set-password -------------------------------------------------------------------------


def test_user_set_password_replaces_a_lost_password(url: str) -> None:
    env = {"CONVEYOR_JWT_SECRET": "k" * 40}
    assert cli("user", "create", "admin", "--role", "admin", "--password-stdin",
               "--store-url", url, stdin="old-password-123\n", **env)[0] == 0  # fmt: skip
    code, out, err = cli("user", "set-password", "admin", "--password-stdin", "--store-url", url,
                         stdin="new-password-456\n", **env)  # fmt: skip
    assert code == 0 and "password set for admin" in out, out + err
    code, _, err = cli("user", "set-password", "nobody", "--password-stdin", "--store-url", url,
                       stdin="new-password-456\n", **env)  # fmt: skip
    assert code == 1 and "nobody" in err

    async def login(password: str) -> bool:
        store = open_store(url)
        await store.connect()
        try:
            settings = Settings(store_url=url, jwt_secret=SecretStr(env["CONVEYOR_JWT_SECRET"]))
            await AuthService(store, settings).login("admin", password)
            return True
        except Unauthenticated:
            return False
        finally:
            await store.close()

    assert asyncio.run(login("new-password-456"))
    assert not asyncio.run(login("old-password-123"))


# -- 15. jobs and dead ------------------------------------------------------------------------


def _dead_job(url: str) -> Job:
    async def go(app: App) -> Job:
        job = await app.enqueue("t", {"n": 1}, max_retries=0)
        (claimed,) = await app.store.claim("w", ["default"], 1, 30.0)
        await app.store.fail_many([Failure(claimed.id, claimed.lease_token, "boom\ntrace", None)])
        return await app.store.get_job(job.id)

    return on_app(url, go)


def test_jobs_list_show_cancel_retry(url: str) -> None:
    dead = _dead_job(url)
    queued = on_app(url, lambda a: a.enqueue("other", queue="email"))
    code, out, _ = cli("jobs", "list", "--store-url", url)
    lines = out.strip().splitlines()
    assert code == 0 and [line.split("\t")[0] for line in lines] == [str(queued.id), str(dead.id)]
    assert lines[1].split("\t")[1:] == ["dead", "default", "t", "attempt 1", "boom"]
    code, out, err = cli("jobs", "list", "--status", "queued", "--limit", "1", "--store-url", url)
    assert out.strip().split("\t")[0] == str(queued.id) and "next" not in err

    code, out, _ = cli("jobs", "show", str(dead.id), "--store-url", url)
    shown = orjson.loads(out)
    assert shown["id"] == str(dead.id) and shown["last_error"] == "boom\ntrace"
    assert [e["to_status"] for e in shown["events"]] == ["queued", "running", "dead"]

    code, out, _ = cli("jobs", "cancel", str(queued.id), "--store-url", url)
    assert code == 0 and "\tcancelled\t" in out
    code, _, err = cli("jobs", "cancel", str(queued.id), "--store-url", url)
    assert code == 1 and "cancelled" in err  # a finished job cannot be cancelled: one line

    code, out, _ = cli("jobs", "retry", str(dead.id), "--payload", '{"n": 2}', "--store-url", url)
    assert code == 0 and "\tqueued\t" in out
    assert on_app(url, lambda a: a.store.get_job(dead.id)).payload == {"n": 2}
    code, _, err = cli("jobs", "show", str(uuid.uuid4()), "--store-url", url)
    assert code == 1 and "not found" in err


def test_dead_list_requeue_discard(url: str) -> None:
    first, second, third = _dead_job(url), _dead_job(url), _dead_job(url)
    alive = on_app(url, lambda a: a.enqueue("t"))
    code, out, _ = cli("dead", "list", "--store-url", url)
    assert [line.split("\t")[0] for line in out.strip().splitlines()] == [
        str(third.id),
        str(second.id),
        str(first.id),
    ]
    code, out, err = cli("dead", "requeue", str(first.id), str(alive.id), "--store-url", url)
    assert code == 1  # one of them was not dead: reported, the other still requeued
    assert str(first.id) in out and str(alive.id) in err
    code, out, _ = cli("dead", "discard", str(second.id), str(alive.id), "--store-url", url)
    assert code == 0 and out.strip() == "discarded 1 of 2"
    code, out, _ = cli("dead", "list", "--store-url", url)
    assert [line.split("\t")[0] for line in out.strip().splitlines()] == [str(third.id)]
    assert on_app(url, lambda a: a.store.get_job(alive.id)).status == JobStatus.QUEUED


def test_queue_help_describes_set_plainly() -> None:
    code, out, _ = cli("queue", "set", "--help")
    assert code == 0 and "e.g." not in out
    for key in ("paused", "max_depth", "concurrency"):
        assert key in out
    code, out, _ = cli("--help")
    assert "jobs" in out and "dead" in out
