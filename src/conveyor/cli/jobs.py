"""`conveyor jobs …` and `conveyor dead …`: what the dashboard's Jobs and Dead letters pages do,
from a terminal. Like `conveyor queue`, they call the service on the store directly."""

from __future__ import annotations

import uuid
from typing import Any

import click
import orjson

from conveyor.app import App
from conveyor.cli.common import json_arg, service_call, store_option
from conveyor.domain.errors import ConveyorError
from conveyor.domain.job import Job, JobStatus
from conveyor.domain.limits import MAX_PAGE
from conveyor.domain.records import JobFilter, JobPage

limit_option = click.option(
    "--limit", "-n", type=click.IntRange(1, MAX_PAGE), default=50, show_default=True
)
cursor_option = click.option(
    "--cursor", type=click.UUID, default=None, help="the `next:` id a previous page printed"
)
STATUSES = click.Choice([s.value for s in JobStatus])


def _line(j: Job) -> str:
    error = (j.last_error or "").split("\n", 1)[0]
    return "\t".join(
        [str(j.id), j.status.value, j.queue, j.type, f"attempt {j.attempt}", error]
    ).rstrip()


def _print_page(page: JobPage) -> None:
    for j in page.jobs:
        click.echo(_line(j))
    if page.next_cursor is not None:
        click.echo(f"next: --cursor {page.next_cursor}", err=True)


@click.group()
def jobs() -> None:
    """List, inspect, cancel and retry jobs."""


@jobs.command("list")
@click.option("--queue", default=None)
@click.option("--status", type=STATUSES, default=None)
@click.option("--type", "job_type", default=None)
@click.option("--tag", default=None)
@limit_option
@cursor_option
@store_option
def jobs_list(
    queue: str | None,
    status: str | None,
    job_type: str | None,
    tag: str | None,
    limit: int,
    cursor: uuid.UUID | None,
    store_url: str | None,
) -> None:
    """Jobs, newest first: id, status, queue, type, attempt, last error."""
    flt = JobFilter(
        queue=queue, status=JobStatus(status) if status else None, type=job_type, tag=tag
    )
    _print_page(
        service_call(store_url, lambda a: a.service.list_jobs(flt, limit=limit, cursor=cursor))
    )


@jobs.command("show")
@click.argument("job_id", type=click.UUID)
@store_option
def jobs_show(job_id: uuid.UUID, store_url: str | None) -> None:
    """One job as JSON (payload, result, error) with its event timeline."""
    # Imported here: the api package loads FastAPI, which no other command of this module (nor
    # `conveyor worker`, which imports it) needs.
    from conveyor.api.serialize import event_out, job_out

    async def go(app: App) -> dict[str, Any]:
        job = await app.service.get(job_id)
        return {**job_out(job), "events": [event_out(e) for e in await app.service.events(job_id)]}

    click.echo(orjson.dumps(service_call(store_url, go), option=orjson.OPT_INDENT_2).decode())


@jobs.command("cancel")
@click.argument("job_id", type=click.UUID)
@store_option
def jobs_cancel(job_id: uuid.UUID, store_url: str | None) -> None:
    """Cancel a job that has not finished (a running one's worker is told at its heartbeat)."""
    job = service_call(store_url, lambda a: a.service.cancel(job_id))
    click.echo(_line(job))


@jobs.command("retry")
@click.argument("job_id", type=click.UUID)
@click.option("--payload", default=None, help="JSON object replacing the payload")
@store_option
def jobs_retry(job_id: uuid.UUID, payload: str | None, store_url: str | None) -> None:
    """Requeue a dead job at attempt 1, optionally with an edited payload."""
    data = json_arg(payload, "--payload") if payload is not None else None
    job = service_call(store_url, lambda a: a.service.retry(job_id, data))
    click.echo(_line(job))


@click.group()
def dead() -> None:
    """The dead-letter queue: list, requeue, discard."""


@dead.command("list")
@click.option("--queue", default=None)
@click.option("--type", "job_type", default=None)
@limit_option
@cursor_option
@store_option
def dead_list(
    queue: str | None,
    job_type: str | None,
    limit: int,
    cursor: uuid.UUID | None,
    store_url: str | None,
) -> None:
    """Dead jobs, newest first: id, status, queue, type, attempt, last error."""
    flt = JobFilter(queue=queue, type=job_type, status=JobStatus.DEAD)
    _print_page(
        service_call(store_url, lambda a: a.service.list_jobs(flt, limit=limit, cursor=cursor))
    )


@dead.command("requeue")
@click.argument("job_ids", nargs=-1, required=True, type=click.UUID)
@store_option
def dead_requeue(job_ids: tuple[uuid.UUID, ...], store_url: str | None) -> None:
    """Requeue dead jobs; ids missing or not dead are reported (exit status 1), not fatal."""

    async def go(app: App) -> list[str]:
        failed = []
        for job_id in dict.fromkeys(job_ids):
            try:
                click.echo(_line(await app.service.retry(job_id)))
            except ConveyorError as exc:
                failed.append(f"{job_id}: {exc.message}")
        return failed

    failed = service_call(store_url, go)
    for line in failed:
        click.echo(line, err=True)
    if failed:
        raise SystemExit(1)


@dead.command("discard")
@click.argument("job_ids", nargs=-1, required=True, type=click.UUID)
@store_option
def dead_discard(job_ids: tuple[uuid.UUID, ...], store_url: str | None) -> None:
    """Delete dead jobs for good; ids that are not dead are left alone."""
    n = service_call(store_url, lambda a: a.service.discard(list(job_ids)))
    click.echo(f"discarded {n} of {len(set(job_ids))}")
