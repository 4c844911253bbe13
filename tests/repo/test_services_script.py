"""scripts/services says what it would install and installs nothing that is present. apt-get
is never run here: a stand-in on PATH records any call, and the tools are found or not by
what PATH holds."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "services"
INSTALL = "apt-get install -y -qq --no-upgrade --no-install-recommends prometheus chromium nginx"


def stub(bin_dir: Path, name: str, body: str = "exit 0") -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def run(bin_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/bash", str(SCRIPT), *args],
        env={"PATH": str(bin_dir)},
        capture_output=True,
        text=True,
        timeout=30,
    )


def apt_calls(tmp_path: Path) -> str:
    log = tmp_path / "apt-calls"
    return log.read_text() if log.exists() else ""


def fake_bin(tmp_path: Path, *tools: str, uid: int = 0) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub(bin_dir, "apt-get", f'echo "$@" >> {tmp_path / "apt-calls"}')
    stub(bin_dir, "id", f"echo {uid}")
    for tool in tools:
        stub(bin_dir, tool)
    return bin_dir


def test_nothing_to_install_when_the_tools_are_present(tmp_path: Path) -> None:
    bin_dir = fake_bin(tmp_path, "prometheus", "promtool", "chromium", "nginx")
    quiet = run(bin_dir)
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
    told = run(bin_dir, "--dry-run")
    assert told.returncode == 0
    assert "nothing to install" in told.stdout
    assert apt_calls(tmp_path) == ""


def test_dry_run_names_the_missing_packages_and_the_exact_command(tmp_path: Path) -> None:
    bin_dir = fake_bin(tmp_path, "promtool")  # prometheus itself is missing
    out = run(bin_dir, "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "missing for the tests: prometheus chromium nginx" in out.stderr
    assert f"would run: apt-get update && {INSTALL}" in out.stderr
    assert apt_calls(tmp_path) == ""


def test_without_root_it_prints_the_command_instead(tmp_path: Path) -> None:
    out = run(fake_bin(tmp_path, "prometheus", "promtool", "nginx", uid=1000))
    assert out.returncode == 0, out.stderr
    assert "missing for the tests: chromium" in out.stderr
    assert "needs root" in out.stderr
    assert "sudo apt-get install -y -qq --no-upgrade --no-install-recommends chromium" in out.stderr
    assert apt_calls(tmp_path) == ""


def test_an_unknown_argument_is_refused(tmp_path: Path) -> None:
    out = run(fake_bin(tmp_path), "--yes")
    assert out.returncode == 2 and "usage" in out.stderr
    assert apt_calls(tmp_path) == ""


PLAN = """Inst libsystemd0 [252.30-1] (252.31-1 Debian:12.15/oldstable [amd64])
Inst chromium-common (120.0-1 Debian:12.15/oldstable [amd64])
Inst chromium (120.0-1 Debian:12.15/oldstable [amd64])"""


def planning_apt(tmp_path: Path) -> Path:
    """A stand-in apt-get that answers the simulation (-s) with PLAN and records every call,
    beside the real text tools the script reads that plan with."""
    bin_dir = fake_bin(tmp_path, "prometheus", "promtool", "nginx")
    calls = tmp_path / "apt-calls"
    plan = tmp_path / "plan"
    plan.write_text(PLAN + "\n")
    stub(bin_dir, "apt-get", f'echo "$@" >> {calls}\ncase " $* " in *" -s "*) cat {plan};; esac')
    for tool in ("awk", "cat", "grep", "wc"):
        (bin_dir / tool).symlink_to(subprocess.check_output(["which", tool], text=True).strip())
    return bin_dir


def test_it_refuses_to_upgrade_what_is_installed(tmp_path: Path) -> None:
    out = run(planning_apt(tmp_path))
    assert out.returncode == 1
    assert "would upgrade packages already here: libsystemd0" in out.stderr
    assert "CONVEYOR_SERVICES_ALLOW_UPGRADES=1" in out.stderr
    calls = apt_calls(tmp_path).splitlines()
    assert calls == ["update -qq", "install -s --no-upgrade --no-install-recommends chromium"]


def test_it_says_what_it_installs_before_installing_it(tmp_path: Path) -> None:
    bin_dir = planning_apt(tmp_path)
    (tmp_path / "plan").write_text("\n".join(PLAN.splitlines()[1:]) + "\n")  # no upgrade
    out = run(bin_dir)
    assert out.returncode == 0, out.stderr
    assert "installing 2 new packages: chromium-common chromium" in out.stderr
    calls = apt_calls(tmp_path).splitlines()
    assert calls[-1] == "install -y -qq --no-upgrade --no-install-recommends chromium"
