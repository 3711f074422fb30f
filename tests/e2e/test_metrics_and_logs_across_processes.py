"""Metrics and logs across real processes: gunicorn as shipped with 2 web processes
(multiprocess metrics), a Celery worker serving its own metrics, JSON logs.

Counters move as they should after an admitted and a refused submission and a succeeded and
a failed job, whichever web process answered; the request id sent with a submission is on
every log line of that request (web) and of its job (worker)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from bench.common import free_port
from generation.models import Job
from tests.conftest import free_images_used_today, make_person, small_job
from tests.e2e.conftest import PRIORITY_LANE, ROOT, start_worker, wait_for_job
from tests.e2e.web_server import web_server

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

TOKEN = "scrape-token-e2e"


def value(text: str, name: str, **labels: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def json_lines(path: Path) -> list[dict[str, object]]:
    lines = []
    for raw in path.read_text(errors="replace").splitlines():
        if raw.startswith("{"):
            lines.append(json.loads(raw))
    return lines


def test_counters_and_request_ids_across_two_web_processes_and_a_worker(
    tmp_path: Path, demo_model: Path
) -> None:
    pat = make_person("pat@example.com", plan="pro")  # the priority lane: this test's worker
    fay = make_person("fay@example.com")
    free_images_used_today(fay, 3)
    web_metrics = tmp_path / "web-metrics"
    web_metrics.mkdir()
    env = {"LOG_FORMAT": "json", "METRICS_TOKEN": TOKEN, "METRICS_ALLOW_IPS": ""}
    scrape = {"Authorization": f"Bearer {TOKEN}"}
    with web_server(
        tmp_path / "web.log", workers=2, PROMETHEUS_MULTIPROC_DIR=str(web_metrics), **env
    ) as url:
        assert requests.get(f"{url}/metrics", timeout=10).status_code == 403
        # Requests spread over both processes; the count is exact whichever answered.
        start = requests.get(f"{url}/metrics", headers=scrape, timeout=10).text
        for _ in range(40):
            assert requests.get(f"{url}/healthz", timeout=10).status_code == 200
        pids = {path.stem.rsplit("_", 1)[1] for path in web_metrics.glob("counter_*.db")}
        assert len(pids) == 2, pids  # both web processes recorded, in their own files
        before = requests.get(f"{url}/metrics", headers=scrape, timeout=10).text
        probes = value(before, "atelier_http_requests_total", route="healthz") - value(
            start, "atelier_http_requests_total", route="healthz"
        )
        assert probes == 40

        pat_headers = {"Authorization": f"Bearer {pat.key}"}
        good = requests.post(
            f"{url}/api/v1/generations",
            json=small_job(),
            headers={**pat_headers, "X-Request-ID": "req-good-1"},
            timeout=30,
        )
        assert good.status_code == 202, good.text
        assert good.headers["X-Request-ID"] == "req-good-1"
        doomed = requests.post(
            f"{url}/api/v1/generations",
            json=small_job(prompt="a blue square on a white background"),
            headers={**pat_headers, "X-Request-ID": "req-doomed-2"},
            timeout=30,
        )
        assert doomed.status_code == 202, doomed.text
        # A model that cannot load: the worker fails this job (and gives its image back).
        Job.objects.filter(pk=doomed.json()["id"]).update(model=str(tmp_path / "no-model"))
        refused = requests.post(
            f"{url}/api/v1/generations",
            json=small_job(),
            headers={"Authorization": f"Bearer {fay.key}", "X-Request-ID": "req-refused-3"},
            timeout=30,
        )
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "quota_exceeded"
        assert refused.headers["X-Request-ID"] == "req-refused-3"
        queued = requests.get(f"{url}/metrics", headers=scrape, timeout=10).text
        assert value(queued, "atelier_queue_jobs") == 2
        assert value(queued, "atelier_lane_oldest_queued_age_seconds", lane="priority") > 0

        worker_port = free_port()
        worker = start_worker(
            tmp_path,
            lanes=PRIORITY_LANE,
            GENERATION_MODEL=str(demo_model),
            LOG_FORMAT="json",
            PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "worker-metrics"),
            WORKER_METRICS_PORT=str(worker_port),
        )
        try:
            session = requests.Session()
            session.headers.update(pat_headers)
            done = wait_for_job(session, f"{url}/api/v1/generations/{good.json()['id']}")
            failed = wait_for_job(session, f"{url}/api/v1/generations/{doomed.json()['id']}")
            assert (done["status"], failed["status"]) == ("succeeded", "failed")
            health = subprocess.run(
                [sys.executable, "manage.py", "worker_health"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                env={**os.environ, "DEBUG": "true"},
            )
            assert health.returncode == 0, health.stderr
            worker_text = requests.get(f"http://127.0.0.1:{worker_port}/metrics", timeout=10).text
        finally:
            worker.stop()
        after = requests.get(f"{url}/metrics", headers=scrape, timeout=10).text

    # The web processes: admissions by outcome, code and plan; quota reserved; requests.
    assert value(after, "atelier_admissions_total", outcome="admitted", plan="pro") == 2
    assert (
        value(
            after, "atelier_admissions_total", outcome="refused", code="quota_exceeded", plan="free"
        )
        == 1
    )
    assert value(after, "atelier_quota_images_total", kind="reserved") == 2
    assert (
        value(after, "atelier_http_requests_total", route="api/v1/generations", status="202") == 2
    )
    assert value(after, "atelier_queue_jobs") == 0
    # The worker: one job succeeded and one failed, their images captured and released.
    assert value(worker_text, "atelier_jobs_finished_total", status="succeeded") == 1
    assert (
        value(worker_text, "atelier_jobs_finished_total", status="failed", code="generation_failed")
        == 1
    )
    assert value(worker_text, "atelier_quota_images_total", kind="captured") == 1
    assert value(worker_text, "atelier_quota_images_total", kind="released") == 1
    assert value(worker_text, "atelier_render_seconds_per_image_count") >= 1

    # Logs: one JSON object per line; each request's lines carry its id.
    web_lines = json_lines(tmp_path / "web.log")
    for request_id, status in (("req-good-1", 202), ("req-refused-3", 429)):
        mine = [line for line in web_lines if line.get("request_id") == request_id]
        assert [line["status"] for line in mine if line.get("logger") == "atelier.request"] == [
            status
        ]
    # The refusal: once, at INFO, with its code; no WARNING from Django for the 429.
    refusal_lines = [line for line in web_lines if line.get("code") == "quota_exceeded"]
    assert [(line["level"], line["request_id"]) for line in refusal_lines] == [
        ("INFO", "req-refused-3")
    ]
    assert not [line for line in web_lines if line.get("logger") == "django.request"]
    request_lines = [line for line in web_lines if line.get("logger") == "atelier.request"]
    assert request_lines and all(line.get("request_id") for line in request_lines)
    # The worker: every line about a job carries the request id that admitted it.
    worker_lines = json_lines(worker.log)
    assert worker_lines, worker.log.read_text()[:2000]
    for job_id, request_id in (
        (good.json()["id"], "req-good-1"),
        (doomed.json()["id"], "req-doomed-2"),
    ):
        about = [line for line in worker_lines if job_id in str(line.get("job_id", ""))]
        assert len(about) >= 2, about
        assert all(request_id in str(line["request_id"]) for line in about), about
