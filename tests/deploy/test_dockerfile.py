"""deploy/docker/Dockerfile: hadolint finds nothing, and the image is what docs/deploy.md says
(multi-stage, pinned installs, non-root, a health check, one entry point for every process).
No Docker engine runs in the tests: CI's workflow builds the image."""

from __future__ import annotations

import re

from tests.deploy.tools import DEPLOY, REPO, run, tool

DOCKERFILE = DEPLOY / "docker" / "Dockerfile"


def test_hadolint_finds_nothing() -> None:
    done = run(tool("hadolint"), "--failure-threshold", "style", str(DOCKERFILE))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_image_is_multi_stage_pinned_and_unprivileged() -> None:
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM \S+ AS (\w+)$", text, re.M)
    assert stages == ["build", "runtime"]
    assert "PIP_CONSTRAINT=/src/constraints.txt" in text
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and not users[-1].startswith(("0", "root"))
    assert re.search(r"^HEALTHCHECK .*\n\s+CMD ", text, re.M)
    assert 'ENTRYPOINT ["conveyor"]' in text


def test_dockerignore_lets_in_exactly_what_the_build_copies() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    ignore = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    copied = set(re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE.read_text(), re.M))
    sources = {src.split("/")[0] for line in copied for src in line.split()}
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert sources <= allowed, sources - allowed
    assert ignore[0] == "*"  # everything else stays out of the build context
    for path in allowed:
        assert (REPO / path).exists(), path
