import pytest

from conveyor import App, InvalidInput


def test_decorator_records_defaults_and_signature():
    app = App("sqlite:///unused.db")

    @app.job("a.sync", queue="q1", max_retries=7, timeout=9)
    def sync_handler(payload):
        return payload

    @app.job("a.async")
    async def async_handler(payload, ctx):
        return None

    d = app.registry.get("a.sync")
    assert d is not None
    assert (d.queue, d.max_retries, d.timeout, d.is_async, d.wants_context) == (
        "q1",
        7,
        9,
        False,
        False,
    )
    d2 = app.registry.get("a.async")
    assert d2 is not None and d2.is_async and d2.wants_context
    assert app.registry.queues() == ["default", "q1"]
    # the decorator hands back the function itself, still callable directly
    assert sync_handler({"x": 1}) == {"x": 1}


def test_new_job_uses_registered_defaults():
    app = App("sqlite:///unused.db")
    app.job("email.send", queue="email", max_retries=5, timeout=30, priority=3)(lambda p: None)
    job = app.new_job("email.send", {"to": "x"})
    assert (job.queue, job.max_retries, job.timeout, job.priority) == ("email", 5, 30, 3)
    assert app.new_job("email.send", queue="other").queue == "other"


def test_duplicate_and_bad_signatures_are_refused():
    app = App("sqlite:///unused.db")
    app.job("x")(lambda p: None)
    with pytest.raises(InvalidInput, match="already registered"):
        app.job("x")(lambda p: None)
    with pytest.raises(InvalidInput, match=r"\(payload\) or \(payload, ctx\)"):
        app.job("y")(lambda: None)
