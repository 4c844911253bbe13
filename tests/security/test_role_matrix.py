"""Every API route x every role (and no token), generated from `app.routes`.

The expected outcome comes from the policy table: a role the table does not allow gets 403 (no
token: 401) and nothing is written; an allowed one is never refused for auth reasons. A route
that declares neither `require(action)` nor `public` fails here, so a new endpoint cannot ship
without a policy decision.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from conveyor.api import create_app
from conveyor.api.auth import api_routes, route_requirement
from conveyor.domain.job import NewJob
from conveyor.domain.records import JobFilter, Role, Schedule, User
from conveyor.security.policy import Action, allowed
from conveyor.store import Store
from tests.helpers import dead_job
from tests.security.conftest import AppFactory, access_token, bearer, secure_settings

_TEMPLATE_APP = create_app(secure_settings("sqlite:///unused.db"))
ROUTES: list[tuple[str, str]] = sorted(
    (method, route.path)
    for route in api_routes(_TEMPLATE_APP)
    for method in route.methods
    if method != "HEAD"
)
ROLES: list[Role | None] = [None, Role.USER, Role.WORKER, Role.ADMIN]
TENANT = "acme"

# A plausible body per write route, so that an allowed call exercises the real handler.
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/v1/jobs"): {"type": "t"},
    ("POST", "/v1/jobs/batch"): {"jobs": [{"type": "t"}]},
    ("POST", "/v1/dead/requeue"): {"ids": [str(uuid.uuid4())]},
    ("POST", "/v1/dead/discard"): {"ids": [str(uuid.uuid4())]},
    ("PATCH", "/v1/queues/{name}"): {"paused": False},
    ("POST", "/v1/schedules"): {"name": "s2", "cron": "0 * * * *", "type": "t"},
    ("PATCH", "/v1/schedules/{name}"): {"enabled": True},
    ("POST", "/v1/auth/login"): {"username": "matrix", "password": "matrix-password"},
    ("POST", "/v1/users"): {"username": "newbie", "password": "long enough pw", "role": "admin"},
    ("PATCH", "/v1/users/{username}"): {"disabled": False},
    ("POST", "/v1/tokens"): {"name": "t", "role": "worker"},
    # the compatibility routes (conveyor.api.compat)
    ("POST", "/login"): {"username": "matrix", "password": "matrix-password"},
    ("POST", "/jobs"): {"type": "t"},
    ("POST", "/task"): {"type": "t"},
}


async def _fixtures(store: Store) -> dict[str, str]:
    job = (await store.enqueue_many([NewJob(type="t", tenant=TENANT)]))[0].job
    dead = await dead_job(store, tenant=TENANT, queue="dlq")
    await store.upsert_schedule(
        Schedule(name="nightly", cron="0 3 * * *", timezone="UTC", type="t")
    )
    await store.create_user(User(username="someone", role=Role.ADMIN, password_hash="x"))
    return {
        "job_id": str(job.id),
        "dead_id": str(dead.id),
        "name": "nightly",
        "username": "someone",
    }


def _path(template: str, values: dict[str, str]) -> str:
    def sub(m: re.Match[str]) -> str:
        key = m.group(1)
        if key == "name":
            return "default" if template.startswith("/v1/queues") else values["name"]
        if key == "jti":
            return values["jti"]
        if key == "job_id" and "retry" in template:
            return values["dead_id"]
        return values[key]

    return re.sub(r"\{([a-z_]+)\}", sub, template)


async def _snapshot(store: Store) -> tuple[Any, ...]:
    return (
        await store.count_by_queue_status(),
        [q.__dict__ for q in await store.list_queue_settings()],
        [(s.name, s.cron, s.enabled) for s in await store.list_schedules()],
        [(u.username, u.role, u.disabled) for u in await store.list_users()],
        [(t.jti, t.revoked_at) for t in await store.list_api_tokens()],
        [(j.id, j.status) for j in (await store.list_jobs(JobFilter(), limit=500)).jobs],
    )


def test_every_route_has_a_policy_decision() -> None:
    undeclared = [
        f"{sorted(r.methods)} {r.path}"
        for r in api_routes(_TEMPLATE_APP)
        if route_requirement(r) is None
    ]
    assert not undeclared, f"routes without require(action) or public: {undeclared}"


def test_the_table_is_what_the_issue_asks_for() -> None:
    user = {a for a in Action if allowed(Role.USER, a)}
    assert user == {Action.JOBS_SUBMIT, Action.JOBS_READ, Action.JOBS_CANCEL, Action.AUTH_SELF}
    worker = {a for a in Action if allowed(Role.WORKER, a)}
    assert worker == {Action.WORKER_PROTOCOL, Action.AUTH_SELF}
    assert all(allowed(Role.ADMIN, a) for a in Action)


@pytest.mark.parametrize(("method", "template"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
async def test_route_against_every_role(
    method: str, template: str, make_api: AppFactory, store: Store
) -> None:
    app, api = await make_api(api_max_wait=0.1)
    route = next(r for r in api_routes(app) if r.path == template and method in r.methods)
    requirement = route_requirement(route)
    assert requirement is not None, f"{method} {template} has no policy decision"
    values = await _fixtures(store)
    settings = app.state.settings
    issued = await app.state.auth.create_api_token("matrix", Role.WORKER)
    values["jti"] = issued.record.jti
    await app.state.auth.create_user("matrix", "matrix-password", Role.ADMIN)
    refresh = (await app.state.auth.login("matrix", "matrix-password")).refresh_token
    path = _path(template, values)
    body = BODIES.get((method, template))
    if template == "/v1/auth/refresh":
        body = {"refresh_token": refresh}

    for role in ROLES:
        headers = {} if role is None else bearer(access_token(settings, role, _tenant(role)))
        before = await _snapshot(store)
        resp = await api.request(method, path, json=body, headers=headers)
        who = role.value if role else "no token"
        if requirement is True:
            assert resp.status_code not in (401, 403), (who, resp.status_code, resp.text)
            continue
        assert isinstance(requirement, Action)
        if role is None:
            assert resp.status_code == 401, (who, resp.text)
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        elif not allowed(role, requirement):
            assert resp.status_code == 403, (who, resp.status_code, resp.text)
            assert resp.json()["code"] == "forbidden"
        else:
            assert resp.status_code not in (401, 403), (who, resp.status_code, resp.text)
            continue
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert await _snapshot(store) == before, f"{who} was refused but something was written"


def _tenant(role: Role) -> str | None:
    return TENANT if role is Role.USER else None


async def test_user_cannot_tell_another_tenants_job_from_a_missing_one(
    make_api: AppFactory, store: Store
) -> None:
    app, api = await make_api()
    mine = (await store.enqueue_many([NewJob(type="t", tenant=TENANT)]))[0].job
    theirs = (await store.enqueue_many([NewJob(type="t", tenant="globex")]))[0].job
    missing = uuid.uuid4()
    user = bearer(access_token(app.state.settings, Role.USER, TENANT))

    assert (await api.get(f"/v1/jobs/{mine.id}", headers=user)).status_code == 200
    for suffix, method in (("", "GET"), ("/events", "GET"), ("/cancel", "POST")):
        a = await api.request(method, f"/v1/jobs/{theirs.id}{suffix}", headers=user)
        b = await api.request(method, f"/v1/jobs/{missing}{suffix}", headers=user)
        assert a.status_code == b.status_code == 404, (suffix, a.text, b.text)
        assert a.text.replace(str(theirs.id), "ID") == b.text.replace(str(missing), "ID")
        assert _same_but_ratelimit(a.headers, b.headers)
    # Long-poll on someone else's job is the same 404 too.
    a = await api.get(f"/v1/jobs/{theirs.id}", params={"wait": 0.1}, headers=user)
    assert a.status_code == 404
    assert not (await store.get_job(theirs.id)).status.terminal  # the cancel wrote nothing

    listed = (await api.get("/v1/jobs", headers=user)).json()["jobs"]
    assert [j["id"] for j in listed] == [str(mine.id)]
    listed = (await api.get("/v1/jobs", params={"tenant": "globex"}, headers=user)).json()
    assert [j["id"] for j in listed["jobs"]] == [str(mine.id)]

    # Submits carry the user's tenant; the admin sees both tenants.
    made = await api.post("/v1/jobs", json={"type": "t"}, headers=user)
    assert made.status_code == 201 and made.json()["tenant"] == TENANT
    admin = bearer(access_token(app.state.settings, Role.ADMIN))
    ids = {j["id"] for j in (await api.get("/v1/jobs", headers=admin)).json()["jobs"]}
    assert {str(mine.id), str(theirs.id)} <= ids


def _same_but_ratelimit(a: Any, b: Any) -> bool:
    # x-request-id names each request (a new one each time), and says nothing about the job.
    drop = {"content-length", "ratelimit-remaining", "ratelimit-reset", "x-request-id"}
    return {k: v for k, v in a.items() if k not in drop} == {
        k: v for k, v in b.items() if k not in drop
    }
