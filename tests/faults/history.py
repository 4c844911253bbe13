"""The one checker of every fault test (and of benchmarks/soak_faults.py).

A test records what it submitted (the ids of acknowledged submits) and which processes it
faulted (killed, cut off from the database) or saw exit; the handlers of tests/faults/apps.py
record every run's start and end; the store says what became of each job. `judge` then checks
the guarantees of docs/reliability.md:

* no job lost: every acknowledged submit is in the store, completed;
* none completed twice: at most one running -> completed event per job, and the stored result
  comes from a run that did finish;
* no job running in two places at once, outside the documented at-least-once window: two runs
  of one job may overlap only when the earlier one's process was faulted before the later one
  started, and the later one is a new attempt (the store gave the job out again after the
  lease expired). A job handed back while its handler still ran would show as two overlapping
  runs of the same attempt, or of a process that was never faulted.

A submit whose answer was lost (a 503 during a restart) may still have committed: such jobs
are in the store without being acknowledged, and are held to the same rules.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from conveyor.domain.job import Job, JobStatus
from conveyor.domain.records import JobFilter
from conveyor.store import Store


@dataclass(frozen=True, slots=True)
class Run:
    """One run of a handler: from its start line to its end line, or to its process's end."""

    job: str
    attempt: int
    pid: int
    start: float
    end: float  # math.inf: no end line and its process is not known to have ended
    finished: bool  # the handler returned (its outcome was offered to the store)


@dataclass(slots=True)
class Verdict:
    submitted: int = 0
    in_store: int = 0
    completed: int = 0
    runs: int = 0
    faulted_processes: int = 0
    lost: list[str] = field(default_factory=list)
    completed_twice: list[str] = field(default_factory=list)
    unexplained_results: list[str] = field(default_factory=list)  # no finished run matches
    overlaps: list[tuple[Run, Run]] = field(default_factory=list)  # two places at once
    reruns: int = 0  # runs of a job again after a fault cost its earlier run (at least once)
    overlapping_reruns: int = 0  # of those, while the faulted run still ran (a partition)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.completed_twice or self.unexplained_results or self.overlaps)

    def summary(self) -> str:
        lines = [
            f"submitted {self.submitted}, in store {self.in_store}, completed {self.completed}, "
            f"handler runs {self.runs}, faulted processes {self.faulted_processes}",
            f"lost: {len(self.lost)}  completed twice: {len(self.completed_twice)}  "
            f"results without a finished run: {len(self.unexplained_results)}  "
            f"running in two places: {len(self.overlaps)}",
            f"re-runs after a fault (at-least-once): {self.reruns}, of which overlapping the "
            f"faulted run: {self.overlapping_reruns}",
        ]
        for name in ("lost", "completed_twice", "unexplained_results"):
            items = getattr(self, name)
            if items:
                lines.append(f"{name}: {items[:10]}")
        for a, b in self.overlaps[:10]:
            lines.append(f"overlap: {a} / {b}")
        return "\n".join(lines)


class History:
    """What a fault test did and saw; `verdict(store)` judges it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.touch()
        self.submitted: set[str] = set()
        self.faults: dict[int, float] = {}  # pid -> when it was killed or cut off
        self.exits: dict[int, float] = {}  # pid -> when it was seen to have ended

    def submit(self, ids: Iterable[object]) -> None:
        self.submitted.update(str(i) for i in ids)

    def fault(self, pid: int, at: float | None = None) -> None:
        self.faults.setdefault(pid, time.time() if at is None else at)

    def exited(self, pid: int, at: float | None = None) -> None:
        self.exits.setdefault(pid, time.time() if at is None else at)

    def lines(self) -> list[dict[str, object]]:
        return [orjson.loads(raw) for raw in self.path.read_bytes().splitlines() if raw]

    def runs(self) -> list[Run]:
        return runs_of(self.lines(), self.exits)

    def running_in(self, pid: int) -> set[str]:
        """Jobs whose run in `pid` has started and not ended."""
        return {r.job for r in self.runs() if r.pid == pid and r.end == math.inf}

    async def verdict(self, store: Store) -> Verdict:
        jobs = await all_jobs(store)
        completions = {
            str(j.id): sum(
                1
                for e in await store.job_events(j.id)
                if e.to_status == JobStatus.COMPLETED and e.from_status == JobStatus.RUNNING
            )
            for j in jobs
        }
        return judge(
            self.runs(), self.submitted, {str(j.id): j for j in jobs}, completions, self.faults
        )


def runs_of(lines: Iterable[Mapping[str, object]], exits: Mapping[int, float]) -> list[Run]:
    """Pair each start line with the end line of the same (job, attempt, pid)."""
    open_runs: dict[tuple[str, int, int], float] = {}
    runs: list[Run] = []
    for line in lines:
        key = (str(line["job"]), int(line["attempt"]), int(line["pid"]))  # type: ignore[call-overload]
        at = float(line["at"])  # type: ignore[arg-type]
        if line["event"] == "start":
            open_runs[key] = at
        elif key in open_runs:
            runs.append(Run(*key, open_runs.pop(key), at, line["event"] == "finish"))
    for (job, attempt, pid), start in open_runs.items():
        runs.append(Run(job, attempt, pid, start, exits.get(pid, math.inf), False))
    return runs


def judge(
    runs: list[Run],
    submitted: set[str],
    jobs: Mapping[str, Job],
    completions: Mapping[str, int],
    faults: Mapping[int, float],
) -> Verdict:
    v = Verdict(
        submitted=len(submitted),
        in_store=len(jobs),
        completed=sum(1 for j in jobs.values() if j.status == JobStatus.COMPLETED),
        runs=len(runs),
        faulted_processes=len(faults),
    )
    v.lost = sorted(i for i in submitted if i not in jobs or jobs[i].status != JobStatus.COMPLETED)
    v.completed_twice = sorted(i for i, n in completions.items() if n > 1)
    finished = {(r.job, r.attempt, r.pid) for r in runs if r.finished}
    for i, job in jobs.items():
        result = job.result if isinstance(job.result, dict) else None
        by_run = None if result is None else (i, job.attempt, result.get("pid"))
        if job.status == JobStatus.COMPLETED and by_run is not None and by_run not in finished:
            v.unexplained_results.append(i)
    by_job: dict[str, list[Run]] = defaultdict(list)
    for r in runs:
        by_job[r.job].append(r)
    for job_runs in by_job.values():
        job_runs.sort(key=lambda r: r.start)
        for n, a in enumerate(job_runs):
            for b in job_runs[n + 1 :]:
                faulted_at = faults.get(a.pid)
                after_fault = faulted_at is not None and b.start >= faulted_at
                if after_fault and b.attempt > a.attempt and b.pid != a.pid:
                    v.reruns += 1
                    if b.start < a.end:
                        v.overlapping_reruns += 1
                elif b.start < a.end:
                    v.overlaps.append((a, b))
    return v


async def all_jobs(store: Store) -> list[Job]:
    jobs: list[Job] = []
    cursor = None
    while True:
        page = await store.list_jobs(JobFilter(), limit=500, cursor=cursor)
        jobs.extend(page.jobs)
        if page.next_cursor is None:
            return jobs
        cursor = page.next_cursor
