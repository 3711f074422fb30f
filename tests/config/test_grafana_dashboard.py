"""platform/grafana-dashboard.json: every panel's query is valid PromQL (checked by promtool)
and names only metrics the platform exposes; so do the alert rules."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from django.test import Client

from tests.config.test_alert_rules import PROMTOOL, ROOT

pytestmark = pytest.mark.django_db

DASHBOARD = ROOT / "platform" / "grafana-dashboard.json"


def panel_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_every_panel_query_is_valid_promql(tmp_path: Path) -> None:
    # Grafana's $__rate_interval becomes a fixed window; promtool parses each query as a rule.
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query{n}", "expr": q.replace("$__rate_interval", "1m")}
                    for n, q in enumerate(panel_queries())
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-rules.json"  # JSON is YAML
    path.write_text(json.dumps(rules))
    result = subprocess.run(
        [PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_and_alerts_name_only_exposed_metrics() -> None:
    exposed = set(re.findall(r"^# TYPE (\w+)", Client().get("/metrics").content.decode(), re.M))
    named = set(re.findall(r"\batelier_\w+", DASHBOARD.read_text()))
    named |= set(re.findall(r"\batelier_\w+", (ROOT / "platform" / "alerts.yml").read_text()))
    for name in sorted(named):
        family = re.sub(r"_(bucket|sum|count|total)$", "", name)
        assert family in exposed or name in exposed, name
