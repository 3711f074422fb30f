"""platform/alerts.yml: valid rules (`promtool check rules`) that fire as their unit tests
say (`promtool test rules platform/alerts.test.yml`). promtool comes with Debian's
prometheus package, which `make test` installs when it is missing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROMTOOL, *args], cwd=ROOT / "platform", capture_output=True, text=True, timeout=120
    )


def test_the_alert_rules_are_valid() -> None:
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 5 rules found" in result.stdout


def test_each_alert_fires_as_its_unit_test_says() -> None:
    result = promtool("test", "rules", "alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set((ROOT / "platform" / "alerts.test.yml").read_text().split("alertname: ")[1:])
    names = {line.split()[0] for line in tested}
    rules = {
        line.split("alert: ")[1].strip()
        for line in (ROOT / "platform" / "alerts.yml").read_text().splitlines()
        if "- alert: " in line
    }
    assert names == rules  # every rule has a test
