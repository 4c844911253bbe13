""".github/workflows/ci.yml: actionlint (types, expressions, known actions' inputs, runner
labels) finds nothing, and the workflow runs what .ci/run and the README promise."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.deploy.tools import REPO, run, tool

WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"


def test_actionlint_finds_nothing() -> None:
    done = run(tool("actionlint"), "-no-color", str(WORKFLOW.relative_to(REPO)))
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_would_catch_a_mistake(tmp_path: Path) -> None:
    broken = tmp_path / ".github" / "workflows" / "ci.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(WORKFLOW.read_text().replace("runs-on: ubuntu-24.04", "runs-on: ubuntu-2404"))
    done = run(tool("actionlint"), "-no-color", str(broken.relative_to(tmp_path)), cwd=tmp_path)
    assert done.returncode == 1 and "ubuntu-2404" in done.stdout


def test_the_jobs_run_the_readmes_test_command_linters_and_image_build() -> None:
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    test = jobs["test"]
    assert {"postgres", "redis"} <= set(test["services"])
    assert test["env"]["CONVEYOR_REQUIRE_SERVICES"] == "1"
    runs = [step.get("run", "") for step in test["steps"]]
    assert any(r.startswith("scripts/test") for r in runs)
    assert "scripts/test" in (REPO / "README.md").read_text()
    assert any(step.get("run") == "make lint" for step in jobs["lint"]["steps"])
    build = next(s for s in jobs["image"]["steps"] if "build-push-action" in s.get("uses", ""))
    assert build["with"]["file"] == "deploy/docker/Dockerfile"
