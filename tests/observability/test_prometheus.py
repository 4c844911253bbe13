"""The Grafana dashboard and the alert rules, checked against a real Prometheus.

A real Conveyor (server, worker and scheduler processes, each with its own /metrics) runs a
small load with successes, retries, dead letters, a cancellation and some 4xx answers while
Debian's `prometheus` scrapes it every second. Then:

* every panel query of deploy/grafana/dashboards/conveyor.json, with Grafana's variables
  replaced, must return at least one series with a number in it: a typo'd metric or label
  name returns nothing and fails here instead of drawing an empty panel;
* every alert expression must evaluate without error, and each operand of its top-level
  comparisons and set operators (`x > 10`, `a and b`) must return data. A healthy system
  rightly does not fire "no workers alive", so the whole expression may be empty; what must
  never be empty is the signal it compares, or the alert could never fire;
* Prometheus itself reports every rule healthy, and `promtool check config/rules` passes on
  the files in deploy/.

The job counters are also compared with the exact numbers the load implies, which checks the
instrumentation (counted once, after the store applied the outcome), not only the names.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import yaml

from tests.conftest import require_services
from tests.helpers import wait_until
from tests.observability.stack import REPO, Stack, free_port, running_stack

MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")

DEPLOY = REPO / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "conveyor.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"

N_OK, N_FLAKY, N_FAIL = 240, 40, 20
# Grafana's variables, as a dashboard user with "All" queues selected would have them.
VARIABLES = {
    "$__rate_interval": "30s",
    "${__rate_interval}": "30s",
    "$__interval": "5s",
    "${__interval}": "5s",
    "$__range": "5m",
    "${queue:regex}": ".*",
    "${queue}": ".*",
    "$queue": ".*",
}


def binaries() -> tuple[str, str]:
    prom, tool = shutil.which("prometheus"), shutil.which("promtool")
    if not prom or not tool:
        require_services(
            "Prometheus",
            "the prometheus/promtool binaries are missing (scripts/services installs Debian's "
            "`prometheus` package when run as root)",
        )
    assert prom and tool
    return prom, tool


def substitute(expr: str) -> str:
    for name in sorted(VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, VARIABLES[name])
    assert "$" not in expr, f"unreplaced Grafana variable in {expr!r}"
    return expr


def panel_queries() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    out = []
    for panel in dash["panels"]:
        for row_panel in [panel, *panel.get("panels", [])]:
            for target in row_panel.get("targets", []):
                if target.get("expr"):
                    out.append((row_panel["title"], substitute(target["expr"])))
    return out


def alert_rules() -> list[tuple[str, str]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [
        (rule["alert"], rule["expr"].strip())
        for group in doc["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


_OPERATOR = re.compile(r"(>=|<=|==|!=|>|<|\band\b|\bor\b|\bunless\b)")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def operands(expr: str) -> list[str]:
    """Split at comparison and set operators outside any (), {}, [] or string; drop `bool`
    modifiers and plain numbers. `a > 1 and b > 0` gives [a, b]."""
    parts, depth, start, i, quote = [], 0, 0, 0, ""
    while i < len(expr):
        c = expr[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "\"'`":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0:
            m = _OPERATOR.match(expr, i)
            if m and not (m.group(0).isalpha() and i > 0 and expr[i - 1].isalnum()):
                parts.append(expr[start:i])
                i = start = m.end()
                continue
        i += 1
    parts.append(expr[start:])
    cleaned = [re.sub(r"^\s*bool\b", "", p).strip() for p in parts]
    return [p for p in cleaned if p and not _NUMBER.match(p)]


def has_number(result: list[dict[str, Any]]) -> bool:
    return any(not math.isnan(float(r["value"][1])) for r in result)


class Prometheus:
    def __init__(self, binary: str, tmp: Path, stack: Stack) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                for job, port in (
                    ("conveyor-api", stack.api_port),
                    ("conveyor-worker", stack.worker_port),
                    ("conveyor-scheduler", stack.scheduler_port),
                )
            ],
        }
        self.config = tmp / "prometheus.yml"
        self.config.write_text(json.dumps(config))  # JSON is YAML
        self.log = tmp / "prometheus.log"
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={self.config}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("wb"),
        )
        self.http = httpx.AsyncClient(base_url=self.url, timeout=10)

    async def value_or_none(self, expr: str) -> float | None:
        """For polling while Prometheus may still be starting."""
        try:
            return await self.value(expr)
        except (httpx.HTTPError, ValueError, AssertionError):  # not up, or not ready (503)
            return None

    async def query(self, expr: str) -> list[dict[str, Any]]:
        resp = await self.http.get("/api/v1/query", params={"query": expr})
        body = resp.json()
        assert resp.status_code == 200 and body["status"] == "success", (expr, body)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    async def value(self, expr: str) -> float | None:
        result = await self.query(expr)
        return float(result[0]["value"][1]) if result else None

    async def close(self) -> None:
        await self.http.aclose()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def submit(http: httpx.AsyncClient, jobs: list[dict[str, Any]]) -> list[str]:
    resp = await http.post("/v1/jobs/batch", json={"jobs": jobs})
    assert resp.status_code == 201, resp.text
    return [j["id"] for j in resp.json()["jobs"]]


async def run_load(http: httpx.AsyncClient, n_ok: int, n_flaky: int, n_fail: int) -> None:
    ok = [{"type": "obs.ok", "payload": {"sleep": 0.02}} for _ in range(n_ok)]
    for i in range(0, n_ok, 60):  # spread over a few scrapes
        await submit(http, ok[i : i + 60])
    await submit(http, [{"type": "obs.flaky"} for _ in range(n_flaky)])
    fail = {"type": "obs.fail", "queue": "critical", "max_retries": 1}
    await submit(http, [{**fail, "payload": {"n": i}} for i in range(n_fail)])
    (later,) = await submit(http, [{"type": "obs.ok", "delay": 3600}])
    assert (await http.post(f"/v1/jobs/{later}/cancel")).status_code == 200
    assert (await http.get(f"/v1/jobs/{uuid.uuid4()}")).status_code == 404
    assert (await http.post("/v1/jobs", json={"type": ""})).status_code == 422


def expected_counts(n_ok: int, n_flaky: int, n_fail: int) -> dict[str, int]:
    return {
        "enqueued": n_ok + n_flaky + n_fail + 1,
        "started": n_ok + 2 * n_flaky + 2 * n_fail,
        "completed": n_ok + n_flaky,
        "failed": n_flaky + 2 * n_fail,
        "retried": n_flaky + n_fail,
        "dead": n_fail,
        "cancelled": 1,
    }


WARM = (1, 1, 1)
MAIN = (N_OK, N_FLAKY, N_FAIL)
TOTAL = {k: v + expected_counts(*MAIN)[k] for k, v in expected_counts(*WARM).items()}


class Scraped:
    """Polls until Prometheus shows exactly these totals; remembers what it saw last, so a
    timeout says which counter is off."""

    def __init__(self, prom: Prometheus, counts: dict[str, int], dead: int) -> None:
        self.prom, self.want = prom, {**counts, "depth_dead": dead}
        self.seen: dict[str, float | None] = {}

    async def __call__(self) -> bool:
        for name in self.want:
            expr = (
                'sum(conveyor_queue_depth{status="dead"})'
                if name == "depth_dead"
                else f"sum(conveyor_jobs_{name}_total)"
            )
            self.seen[name] = await self.prom.value(expr)
        return all(self.seen[k] == v for k, v in self.want.items())

    def __str__(self) -> str:
        return f"totals {self.want}; Prometheus saw {self.seen}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def loaded(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[Stack, Any]]:
    """A Conveyor that has run the whole load, and a Prometheus that scraped all of it.

    The load runs twice: a small warm-up, scraped before the main run, then the main run.
    Prometheus takes a series' first sample as its starting point, so events that happen
    before a series was first scraped never show in rate(); the warm-up gives every series
    (each route and status, each histogram) a first sample, as any uptime would.
    """
    prom_bin, _ = binaries()
    tmp = tmp_path_factory.mktemp("observability")
    with running_stack(tmp, worker_args=("--concurrency", "20")) as stack:
        await stack.wait_ready()
        prom = Prometheus(prom_bin, tmp, stack)
        try:
            await wait_until(
                lambda: prom.value_or_none('count(up{job=~"conveyor-.*"} == 1)'),
                timeout=20,
                interval=0.2,
                message="all targets scraped",
            )
            async with httpx.AsyncClient(base_url=stack.api, timeout=10) as http:
                await run_load(http, *WARM)
                warm = Scraped(prom, expected_counts(*WARM), dead=WARM[2])
                await wait_until(warm, timeout=20, interval=0.25, message=str(warm))
                await run_load(http, *MAIN)
            everything = Scraped(prom, TOTAL, dead=WARM[2] + N_FAIL)
            try:
                await wait_until(everything, timeout=40, interval=0.25)
            except AssertionError as exc:
                raise AssertionError(f"{exc}: {everything}") from None
            yield stack, prom
        finally:
            await prom.close()


@MODULE_LOOP
async def test_every_panel_query_returns_data(loaded: tuple[Stack, Prometheus]) -> None:
    _, prom = loaded
    queries = panel_queries()
    assert len(queries) >= 15
    empty = []
    for title, expr in queries:
        if not has_number(await prom.query(expr)):
            empty.append(f"{title}: {expr}")
    assert not empty, "panels without data:\n" + "\n".join(empty)


@MODULE_LOOP
async def test_every_alert_expression_has_data(loaded: tuple[Stack, Prometheus]) -> None:
    _, prom = loaded
    rules = alert_rules()
    assert {name for name, _ in rules} >= {
        "ConveyorQueueBacklogGrowing",
        "ConveyorDeadJobsRising",
        "ConveyorNoWorkersAlive",
        "ConveyorHighWaitP99",
    }
    empty = []
    for name, expr in rules:
        await prom.query(expr)  # evaluates without error (firing or not)
        sides = operands(expr)
        assert sides, f"{name}: no operands found in {expr!r}"
        for side in sides:
            if not has_number(await prom.query(side)):
                empty.append(f"{name}: {side}")
    assert not empty, "alert signals without data:\n" + "\n".join(empty)

    async def rules_evaluated() -> list[dict[str, Any]] | None:
        body = (await prom.http.get("/api/v1/rules")).json()
        found = [r for g in body["data"]["groups"] for r in g["rules"]]
        if len(found) == len(rules) and all(
            r.get("lastEvaluation", "0001")[:4] != "0001" for r in found
        ):
            return found
        return None

    evaluated = await wait_until(rules_evaluated, timeout=10, message="rules evaluated")
    assert all(r["health"] == "ok" for r in evaluated), evaluated


@MODULE_LOOP
async def test_counters_match_the_load(loaded: tuple[Stack, Prometheus]) -> None:
    """Labels are queue and type, never ids; the wait histogram saw every start."""
    _, prom = loaded
    series = await prom.query("conveyor_jobs_dead_total > 0")
    assert {(s["metric"]["queue"], s["metric"]["type"]) for s in series} == {
        ("critical", "obs.fail")
    }
    assert await prom.value("sum(conveyor_job_wait_seconds_count)") == TOTAL["started"]
    routes = {s["metric"]["route"] for s in await prom.query("conveyor_http_requests_total")}
    assert "/v1/jobs/{job_id}/cancel" in routes and "/v1/jobs/batch" in routes
    assert not any(re.search(r"[0-9a-f]{8}-", r) for r in routes), routes
    assert await prom.value('sum(conveyor_workers_alive{job="conveyor-api"})') == 1
    assert await prom.value("sum(conveyor_scheduler_leader)") == 1


@MODULE_LOOP
async def test_worker_probes_and_job_logs(loaded: tuple[Stack, Prometheus]) -> None:
    stack, _ = loaded
    async with httpx.AsyncClient(timeout=5) as http:
        for url in (stack.worker_url, stack.scheduler_url):
            for probe in ("/livez", "/readyz"):
                resp = await http.get(url + probe)
                assert resp.status_code == 200, (url, probe, resp.text)
                assert resp.json() == {"status": "ok"}
        text = (await http.get(stack.worker_url + "/metrics")).text
        assert "conveyor_worker_free_slots{" in text
    # Every job line of the worker is a JSON object carrying the job's identity.
    job_lines = [
        json.loads(line)
        for line in stack.log("worker").splitlines()
        if line.startswith("{") and '"job failed"' in line
    ]
    assert len(job_lines) == TOTAL["failed"]
    for line in job_lines:
        assert {"job_id", "job_type", "queue", "attempt", "worker_id"} <= line.keys(), line


def test_promtool_accepts_the_deploy_files() -> None:
    """Syntax of the config and rules, and the alerts' unit tests: each fires on the situation
    it names and not on a healthy system."""
    _, promtool = binaries()
    for args in (
        ["check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
        ["check", "rules", str(ALERTS)],
        ["test", "rules", str(DEPLOY / "prometheus" / "alerts_test.yml")],
    ):
        done = subprocess.run([promtool, *args], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr


def test_operand_splitting() -> None:
    assert operands("a > 1") == ["a"]
    assert operands('sum by (q) (x{s="a>b"}) > 10 and deriv(y[5m]) > 0') == [
        'sum by (q) (x{s="a>b"})',
        "deriv(y[5m])",
    ]
    assert operands("up{job=~'c.*'} < bool 1") == ["up{job=~'c.*'}"]
    assert operands("max(x) or vector(0)") == ["max(x)", "vector(0)"]
