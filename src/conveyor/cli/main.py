"""`conveyor` command line: dev, server, worker, scheduler, migrate, enqueue, queue, schedule,
jobs, dead, user, token, bench, events."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click
import uvicorn

from conveyor.app import App
from conveyor.cli.auth import bootstrap_admin, dev_settings, login_help, token, user
from conveyor.cli.common import (
    EmbeddedServer,
    http_options,
    json_arg,
    layered_settings,
    run_async,
    service_call,
    settings_for,
    store_option,
)
from conveyor.cli.events import events
from conveyor.cli.jobs import dead, jobs
from conveyor.domain.errors import ConveyorError
from conveyor.domain.job import ALL_QUEUES
from conveyor.domain.records import Schedule
from conveyor.runtime import probes
from conveyor.runtime.heap import freeze_startup_heap
from conveyor.runtime.logs import configure_logging
from conveyor.scheduler.scheduler import Scheduler
from conveyor.service.startup import ensure_migrated, until_store_answers
from conveyor.store import open_store
from conveyor.worker.executor import Worker

T = TypeVar("T")


def load_app(target: str) -> App:
    """Import `module:attribute` (the current directory is importable, like `python -m`)."""
    module_name, _, attr = target.partition(":")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:  # a typo in APP, or an import inside that module failing
        raise click.ClickException(
            f"cannot import module {module_name!r} (from APP {target!r}): {exc}"
        ) from None
    app = getattr(module, attr or "app", None)
    if not isinstance(app, App):
        raise click.BadParameter(f"{target!r} is not a conveyor.App", param_hint="APP")
    return app


def _on_signals(first: Callable[[], None], second: Callable[[], None]) -> None:
    """First SIGTERM/SIGINT: graceful stop; a second one: stop now."""
    loop = asyncio.get_running_loop()
    seen = {"n": 0}

    def handler() -> None:
        seen["n"] += 1
        (first if seen["n"] == 1 else second)()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, handler)


transport_option = click.option(
    "--transport",
    type=click.Choice(["store", "redis", "kafka"]),
    default=None,
    help="how ready jobs reach workers (env CONVEYOR_TRANSPORT; default store); redis needs "
    "CONVEYOR_REDIS_URL, kafka CONVEYOR_KAFKA_BOOTSTRAP",
)


@click.group()
@click.option("--log-level", envvar="CONVEYOR_LOG_LEVEL", default="INFO")
@click.option(
    "--log-format",
    envvar="CONVEYOR_LOG_FORMAT",
    default="json",
    type=click.Choice(["json", "console"]),
)
def main(log_level: str, log_format: str) -> None:
    """Conveyor: distributed job processing."""
    configure_logging(log_level, log_format)


@main.command()
@store_option
def migrate(store_url: str | None) -> None:
    """Apply pending schema migrations (fails at once if the store does not answer)."""
    applied = run_async(_migrate(settings_for(store_url).store_url))
    click.echo(f"applied: {', '.join(applied)}" if applied else "schema is up to date")


async def _migrate(store_url: str) -> list[str]:
    """The only path (with App.open(migrate=True)) that creates a SQLite file."""
    store = open_store(store_url)
    await store.connect()
    try:
        return await store.migrate()
    finally:
        await store.close()


metrics_port_option = click.option(
    "--metrics-port",
    type=int,
    default=None,
    help="serve /metrics, /livez and /readyz on this port (off by default)",
)
metrics_host_option = click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    help="bind for --metrics-port (0.0.0.0 in a pod, for the kubelet and Prometheus)",
)


@contextlib.asynccontextmanager
async def _probes(
    host: str,
    port: int | None,
    live: probes.Check,
    ready: probes.Check,
    degraded: probes.Check | None = None,
) -> AsyncIterator[None]:
    if port is None:
        yield
        return
    server = probes.ProbeServer(host, port, live, ready, degraded)
    await server.start()
    try:
        yield
    finally:
        await server.stop()


@main.command()
@click.argument("app_target", metavar="APP")
@store_option
@transport_option
@click.option(
    "--queues",
    "-q",
    default=None,
    help="comma-separated queues, or '*' for every queue (default: the app's handlers' queues)",
)
@click.option("--concurrency", "-c", type=int, default=None)
@click.option("--grace", type=float, default=None, help="seconds in-flight jobs get on shutdown")
@click.option("--lease", type=float, default=None, help="lease seconds")
@click.option(
    "--server",
    "server_url",
    envvar="CONVEYOR_SERVER",
    default=None,
    help="grpc://host:port: take jobs from a Conveyor server instead of the store",
)
@click.option("--token", envvar="CONVEYOR_TOKEN", default=None, help="WORKER token for --server")
@metrics_port_option
@metrics_host_option
def worker(
    app_target: str,
    store_url: str | None,
    transport: str | None,
    queues: str | None,
    concurrency: int | None,
    grace: float | None,
    lease: float | None,
    server_url: str | None,
    token: str | None,
    metrics_port: int | None,
    metrics_host: str,
) -> None:
    """Run the handlers of APP (module:attribute), direct to the store or, with --server,
    remotely over gRPC (the same executor; the server does promotion and lease reaping)."""
    app = load_app(app_target)
    app.settings = layered_settings(
        app.settings, store_url, shutdown_grace=grace, lease_seconds=lease, transport=transport
    )
    queue_list = queues.split(",") if queues else None
    started: list[Worker] = []

    async def serve(w: Worker, ping: Callable[[], Awaitable[None]]) -> None:
        started.append(w)

        async def live() -> str | None:
            return w.liveness()

        async def ready() -> str | None:
            if not w.registered:
                return "worker not registered (starting or stopping)"
            return await probes.store_reachable(ping)

        _on_signals(w.stop, lambda: w.stop(immediate=True))
        async with _probes(metrics_host, metrics_port, live, ready, app.transport.problem):
            freeze_startup_heap()
            await w.run()

    async def go() -> None:
        if server_url is not None:
            from conveyor.grpc.remote import RemoteWorkerStore

            remote = RemoteWorkerStore(server_url, token, wait_seconds=app.settings.grpc_fetch_wait)
            await remote.connect()
            try:
                w = Worker(
                    remote,
                    app.registry,
                    queues=queue_list,
                    concurrency=concurrency,
                    settings=app.settings,
                    retry_policy=app.retry_policy,
                )
                await serve(w, remote.ping)
            finally:
                await remote.close()
            return
        # A store that does not answer yet: wait for it (backoff, a log line per attempt).
        await until_store_answers(app.open, store_url=app.settings.store_url)
        try:
            await serve(app.worker(queues=queue_list, concurrency=concurrency), app.store.ping)
        finally:
            await app.close()

    try:
        run_async(go())
    except ConveyorError as exc:  # e.g. the server refused the token
        raise click.ClickException(exc.message) from exc
    _exit_past_running_threads(started)


def _exit_past_running_threads(workers: list[Worker]) -> None:
    """End the process now if sync handler threads still run after the worker stopped.

    A thread cannot be killed, and interpreter exit joins every ThreadPoolExecutor thread, so
    the process would outlive its grace period by as long as the handler runs. By now the
    worker has flushed its outcomes, deregistered and closed the store; the abandoned jobs
    were not handed back (their leases expire and the reaper retries them), so ending the
    threads with the process is the documented at-least-once path of a crash, never a second
    concurrent run. Flush what is buffered, then skip the joins with os._exit."""
    left = sum(w.threads_running for w in workers)
    if not left:
        return
    click.echo(
        f"conveyor worker: exiting with {left} sync handler thread(s) still running; the jobs "
        "still held are retried once their leases expire",
        err=True,
    )
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


@main.command()
@store_option
@transport_option
@metrics_port_option
@metrics_host_option
def scheduler(
    store_url: str | None, transport: str | None, metrics_port: int | None, metrics_host: str
) -> None:
    """Promote delayed jobs, reap expired leases, fire cron schedules, prune old jobs (and,
    on the Redis transport, recover and re-dispatch what Redis lost)."""
    settings = settings_for(store_url, transport=transport)

    async def go() -> None:
        store = open_store(settings.store_url, publish_events=settings.publishes_events)
        try:
            # A store that does not answer yet: wait for it (backoff, a log line per attempt).
            await until_store_answers(store.connect, store_url=settings.store_url)
            await ensure_migrated(store)
            s = Scheduler(store, settings)

            async def live() -> str | None:
                return None  # answering at all means the event loop turns

            async def ready() -> str | None:
                return await probes.store_reachable(store.ping)

            _on_signals(s.stop, s.stop)
            async with _probes(metrics_host, metrics_port, live, ready, s.transport.problem):
                await s.run()
        finally:
            await store.close()

    try:
        run_async(go())
    except ConveyorError as exc:  # e.g. a missing schema, or the Redis transport without a URL
        raise click.ClickException(exc.message) from exc


host_option = click.option("--host", default="127.0.0.1", show_default=True, help="HTTP bind")
port_option = click.option("--port", type=int, default=8080, show_default=True, help="HTTP port")


@main.command()
@store_option
@transport_option
@host_option
@port_option
@click.option("--access-log/--no-access-log", default=False, show_default=True)
@click.option(
    "--grpc-port",
    type=int,
    default=None,
    help="gRPC port (default 50051, env CONVEYOR_GRPC_PORT); 0 serves HTTP only",
)
@click.option("--grpc-host", default=None, help="gRPC bind (default: --host)")
def server(
    store_url: str | None,
    transport: str | None,
    host: str,
    port: int,
    access_log: bool,
    grpc_port: int | None,
    grpc_host: str | None,
) -> None:
    """Serve the HTTP API and gRPC. Run `conveyor migrate` first: servers never migrate."""
    from conveyor.api import create_app

    settings = settings_for(store_url, grpc_port=grpc_port, transport=transport)
    if not settings.auth_enabled:
        click.echo(
            "WARNING: auth is disabled (CONVEYOR_AUTH_ENABLED=false): anyone who "
            "reaches this port is an admin",
            err=True,
        )
    if settings.grpc_port:
        from conveyor.cli.serve import serve_http_and_grpc

        try:
            run_async(serve_http_and_grpc(settings, host, port, grpc_host or host, access_log))
        except ConveyorError as exc:  # e.g. auth on and no signing key: refuse to start
            raise click.ClickException(exc.message) from exc
        return
    try:
        api = create_app(settings)
    except ConveyorError as exc:  # e.g. auth on and no signing key: refuse to start
        raise click.ClickException(exc.message) from exc
    uvicorn.run(api, host=host, port=port, **http_options(settings, access_log=access_log))


@main.command()
@store_option
@transport_option
@click.option("--app", "app_target", default="conveyor.cli.demo:app", show_default=True)
@click.option("--concurrency", "-c", type=int, default=None)
@host_option
@port_option
def dev(
    store_url: str | None,
    transport: str | None,
    app_target: str,
    concurrency: int | None,
    host: str,
    port: int,
) -> None:
    """Everything in one process on a SQLite file: migrations, API, worker, scheduler."""
    from conveyor.api import create_app
    from conveyor.cli.serve import start_dev_grpc

    app = load_app(app_target)
    app.settings = dev_settings(layered_settings(app.settings, store_url, transport=transport))
    configure_logging(app.settings.log_level, "console")

    async def go() -> None:
        applied = await _migrate(app.settings.store_url)
        async with app:
            admin_password = await bootstrap_admin(app.store, app.settings)
            # Every queue, so a job submitted to any queue runs (handler or dead letter).
            w = app.worker(queues=[ALL_QUEUES], concurrency=concurrency)
            sched = Scheduler(app.store, app.settings, transport=app.transport)
            grpc_server = await start_dev_grpc(app.service, host)
            api = EmbeddedServer(
                uvicorn.Config(
                    create_app(service=app.service),
                    host=host,
                    port=port,
                    access_log=False,
                    server_header=False,
                    log_config=None,
                    lifespan="on",
                )
            )

            def stop() -> None:
                w.stop()
                sched.stop()
                api.should_exit = True

            def stop_now() -> None:
                w.stop(immediate=True)
                api.force_exit = True

            _on_signals(stop, stop_now)
            click.echo(
                f"Conveyor dev: store {app.settings.store_url}"
                f"{' (migrated: ' + ', '.join(applied) + ')' if applied else ''}\n"
                f"  handlers: {', '.join(sorted(app.registry.names()))}\n"
                f"  dashboard: http://{host}:{port}/  (metrics: /metrics)\n"
                f"  API docs: http://{host}:{port}/docs\n"
                + (f"  gRPC: {host}:{grpc_server.port} (with reflection)\n" if grpc_server else "")
                + "  submit a job: conveyor enqueue demo.echo --payload '{\"hello\": 1}'\n"
                + (
                    login_help(f"http://{host}:{port}", admin_password) + "\n"
                    if app.settings.auth_enabled
                    else "  auth: DISABLED (CONVEYOR_AUTH_ENABLED=false)\n"
                )
                + "  Ctrl-C stops gracefully."
            )
            try:
                await asyncio.gather(w.run(), sched.run(), api.serve())
            finally:
                if grpc_server is not None:
                    await grpc_server.stop(0)

    try:
        run_async(go())
    except ConveyorError as exc:  # e.g. the Redis transport without a Redis URL
        raise click.ClickException(exc.message) from exc


@main.command()
@click.argument("job_type")
@store_option
@click.option("--payload", default="{}", help="any JSON value")
@click.option("--queue", default="default")
@click.option("--priority", type=int, default=0)
@click.option("--delay", type=float, default=None, help="seconds from now")
@click.option("--count", type=int, default=1, help="submit this many copies")
def enqueue(
    job_type: str,
    store_url: str | None,
    payload: str,
    queue: str,
    priority: int,
    delay: float | None,
    count: int,
) -> None:
    """Submit a job."""
    data = json_arg(payload, "--payload")
    run_at = datetime.now(UTC) + timedelta(seconds=delay) if delay else None

    async def go(app: App) -> list[str]:
        jobs = [
            app.new_job(job_type, data, queue=queue, priority=priority, run_at=run_at)
            for _ in range(count)
        ]
        return [str(j.id) for j in await app.enqueue_many(jobs)]

    for job_id in service_call(store_url, go):
        click.echo(job_id)


@main.group()
def queue() -> None:
    """Pause, resume and limit queues (`conveyor queue set NAME KEY=VALUE...`)."""


@queue.command("set")
@click.argument("name")
@click.argument("settings", nargs=-1, required=True, metavar="KEY=VALUE...")
@store_option
def queue_set(name: str, settings: tuple[str, ...], store_url: str | None) -> None:
    """Change queue NAME's settings; each KEY=VALUE takes a JSON value, null clears a limit.

    \b
    Keys: paused (true|false), max_depth (jobs waiting; over it a submit gets 429),
    concurrency (jobs of this queue running at once, across all workers).
    Example: conveyor queue set email paused=true max_depth=10000"""
    changes: dict[str, Any] = {}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}")
        changes[key] = json_arg(value, key)
    result = service_call(store_url, lambda app: app.service.update_queue(name, changes))
    click.echo(
        f"{result.name}: paused={result.paused} max_depth={result.max_depth} "
        f"concurrency={result.concurrency}"
    )


@main.group()
def schedule() -> None:
    """Cron schedules."""


@schedule.command("set")
@click.argument("name")
@click.argument("cron")
@click.argument("job_type")
@store_option
@click.option("--payload", default="{}")
@click.option("--queue", default="default")
@click.option("--timezone", "tz", default="UTC")
@click.option("--no-replace", is_flag=True, help="fail if a schedule NAME exists")
def schedule_set(
    name: str,
    cron: str,
    job_type: str,
    store_url: str | None,
    payload: str,
    queue: str,
    tz: str,
    no_replace: bool,
) -> None:
    """Create or replace a schedule firing JOB_TYPE on CRON: 5 fields (minute hour day month
    weekday), or 6 with seconds last (`* * * * * */10`: every 10 s). Prints the next three
    fire times."""
    s = Schedule(
        name=name,
        cron=cron,
        timezone=tz,
        type=job_type,
        payload=json_arg(payload, "--payload"),
        queue=queue,
    )

    async def go(app: App) -> tuple[Schedule, list[datetime]]:
        put = app.service.create_schedule if no_replace else app.service.put_schedule
        saved = await put(s)
        return saved, app.service.upcoming(saved, 3)

    result, upcoming = service_call(store_url, go)
    # The next fire times, so a cron mistake (a field off by one) shows at once.
    click.echo(f"{result.name}: next runs " + ", ".join(t.isoformat() for t in upcoming))


@schedule.command("list")
@store_option
def schedule_list(store_url: str | None) -> None:
    for s in service_call(store_url, lambda app: app.service.list_schedules()):
        click.echo(
            f"{s.name}\t{s.cron}\t{s.timezone}\t{s.type}\tenabled={s.enabled}\tnext={s.next_run_at}"
        )


@main.command()
@store_option
@click.option("--jobs", "-n", type=int, default=20_000, show_default=True)
@click.option("--concurrency", "-c", type=int, default=200, show_default=True)
@click.option("--rate", type=float, default=None, help="steady mode: jobs per second")
@click.option("--duration", type=float, default=20.0, show_default=True, help="steady mode seconds")
@click.option(
    "--remote",
    is_flag=True,
    help="compare a remote worker (jobs over gRPC) with a direct one, in throughput mode",
)
def bench(
    store_url: str | None,
    jobs: int,
    concurrency: int,
    rate: float | None,
    duration: float,
    remote: bool,
) -> None:
    """Throughput (drain N no-op jobs) or, with --rate, latency at a steady rate."""
    if remote:
        from conveyor.cli.bench_remote import run_remote_bench

        run_async(
            run_remote_bench(settings_for(store_url).store_url, jobs=jobs, concurrency=concurrency)
        )
        return
    from conveyor.cli.bench import run_bench

    run_async(
        run_bench(
            settings_for(store_url).store_url,
            jobs=jobs,
            concurrency=concurrency,
            rate=rate,
            duration=duration,
        )
    )


main.add_command(user)
main.add_command(token)
main.add_command(jobs)
main.add_command(dead)
main.add_command(events)
