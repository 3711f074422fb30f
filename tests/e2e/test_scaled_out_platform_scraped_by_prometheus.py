"""Scaled out and watched: two web nodes (gunicorn servers of their own) and three GPU
workers serving different lanes, over one PostgreSQL and one Redis, scraped by Debian's
Prometheus server on loopback.

Every job is done exactly once, whichever node admitted it and whichever worker claimed
it; Prometheus scrapes all five targets, and its query API shows the queue filling and
emptying, the admissions of both nodes and the jobs all workers finished. The scraped
series are drawn with matplotlib into test-output/dashboard.png (the README shows one
run's picture, copied to docs/dashboard.png).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bench.common import free_port
from billing.models import QuotaCounter
from generation.models import Image, Job
from tests.conftest import make_person, small_job
from tests.e2e.conftest import ROOT, WorkerProcess, start_worker, wait_for_job
from tests.e2e.test_redis_stopped import RedisServer
from tests.e2e.web_server import web_server

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
TOKEN = "scrape-token-scaled-out"
# Each run draws it here; docs/dashboard.png (in the README) is a copy of one run's.
PICTURE = ROOT / "test-output" / "dashboard.png"


@contextlib.contextmanager
def prometheus(directory: Path, *, web: list[str], workers: list[str]) -> Iterator[str]:
    """Prometheus scraping `web` (with the bearer token) and `workers` every second."""
    port = free_port()
    config = directory / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: web\n"
        f"    authorization: {{credentials: {TOKEN}}}\n"
        f"    static_configs: [{{targets: {json.dumps(web)}}}]\n"
        "  - job_name: worker\n"
        f"    static_configs: [{{targets: {json.dumps(workers)}}}]\n"
    )
    log = directory / "prometheus.log"
    process = subprocess.Popen(
        [
            PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={directory / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"prometheus did not start:\n{log.read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def query(prometheus_url: str, expr: str) -> list[dict[str, object]]:
    answer = requests.get(f"{prometheus_url}/api/v1/query", params={"query": expr}, timeout=10)
    answer.raise_for_status()
    return answer.json()["data"]["result"]


def scalar(prometheus_url: str, expr: str) -> float | None:
    result = query(prometheus_url, expr)
    return float(result[0]["value"][1]) if result else None


def until(prometheus_url: str, expr: str, expected: float, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while (seen := scalar(prometheus_url, expr)) != expected:
        assert time.monotonic() < deadline, f"{expr} = {seen}, expected {expected}"
        time.sleep(0.5)


def draw(prometheus_url: str, start: float, end: float) -> None:
    """The dashboard's main panels from the series Prometheus scraped, as a picture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("Queue depth (jobs)", {"queued": "max(atelier_queue_jobs)"}),
        (
            "Oldest queued job per lane (s)",
            {"{lane}": "max by (lane) (atelier_lane_oldest_queued_age_seconds)"},
        ),
        ("Live GPU workers per lane", {"{lane}": "max by (lane) (atelier_lane_workers_live)"}),
        (
            "Admissions by node (total)",
            {"{instance}": 'sum by (instance) (atelier_admissions_total{outcome="admitted"})'},
        ),
        (
            "Jobs finished by worker (total)",
            {"{instance}": "sum by (instance) (atelier_jobs_finished_total)"},
        ),
        (
            "Render seconds per image (p50)",
            {
                "p50": "histogram_quantile(0.5, sum by (le) "
                "(rate(atelier_render_seconds_per_image_bucket[15s])))"
            },
        ),
    ]
    figure, axes = plt.subplots(3, 2, figsize=(12, 9), constrained_layout=True)
    for axis, (title, series) in zip(axes.flat, panels, strict=True):
        for legend, expr in series.items():
            answer = requests.get(
                f"{prometheus_url}/api/v1/query_range",
                params={"query": expr, "start": start, "end": end, "step": 1},
                timeout=10,
            ).json()
            for result in answer["data"]["result"]:
                points = [(float(t) - start, float(v)) for t, v in result["values"]]
                label = legend.format(**result["metric"]) if "{" in legend else legend
                axis.plot(*zip(*points, strict=True), label=label)
        axis.set_title(title)
        axis.set_xlabel("seconds")
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7)
    figure.suptitle("Atelier, scraped by Prometheus: 2 web nodes, 3 GPU workers (one test run)")
    PICTURE.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(PICTURE, dpi=80)


def test_two_web_nodes_and_three_workers_do_every_job_once_and_prometheus_sees_them_all(
    tmp_path: Path, demo_model: Path, own_redis: RedisServer
) -> None:
    payers = [make_person(f"payer{n}@example.com", plan="pro") for n in range(2)]
    free = [make_person(f"free{n}@example.com") for n in range(2)]
    # A Redis of its own: the suite's shared worker (free and standard lanes, on the suite's
    # Redis) gets no ticket for these jobs, so only this test's three workers run them.
    env = {"METRICS_TOKEN": TOKEN, "METRICS_ALLOW_IPS": "", "REDIS_URL": own_redis.url}
    worker_ports = [free_port() for _ in range(3)]
    lanes = ["priority", "free", "priority,free"]
    workers: list[WorkerProcess] = []
    with contextlib.ExitStack() as stack:
        nodes = [
            stack.enter_context(
                web_server(
                    tmp_path / f"web{n}.log",
                    workers=1,
                    PROMETHEUS_MULTIPROC_DIR=str(tmp_path / f"web{n}-metrics"),
                    **env,
                )
            )
            for n in range(2)
        ]
        targets = {
            "web": [node.removeprefix("http://") for node in nodes],
            "workers": [f"127.0.0.1:{port}" for port in worker_ports],
        }
        prom = stack.enter_context(prometheus(tmp_path, **targets))
        start = time.time()
        until(prom, 'count(up{job="web"} == 1)', 2)

        # 12 jobs, each person's alternating between the two nodes; no worker yet.
        submitted = []
        for n, person in enumerate(payers + free):
            for k in range(3):
                node = nodes[(n + k) % 2]
                answer = requests.post(
                    f"{node}/api/v1/generations",
                    json=small_job(seed=100 * n + k),
                    headers={"Authorization": f"Bearer {person.key}"},
                    timeout=30,
                )
                assert answer.status_code == 202, answer.text
                submitted.append((person, answer.json()["id"]))
        until(prom, "max(atelier_queue_jobs)", 12)
        until(prom, 'sum(atelier_admissions_total{outcome="admitted"})', 12)  # both nodes
        admitted_by_node = query(
            prom, 'sum by (instance) (atelier_admissions_total{outcome="admitted"})'
        )
        assert sorted(float(r["value"][1]) for r in admitted_by_node) == [6, 6]
        assert (scalar(prom, 'max(atelier_lane_oldest_queued_age_seconds{lane="free"})') or 0) > 0

        for port, lane in zip(worker_ports, lanes, strict=True):
            workers.append(
                start_worker(
                    tmp_path,
                    lanes=lane,
                    GENERATION_MODEL=str(demo_model),
                    PROMETHEUS_MULTIPROC_DIR=str(tmp_path / f"worker-{port}-metrics"),
                    WORKER_METRICS_PORT=str(port),
                    REDIS_URL=own_redis.url,
                )
            )
            stack.callback(workers[-1].stop)
        until(prom, 'count(up{job="worker"} == 1)', 3)
        for person, job_id in submitted:
            with requests.Session() as session:
                session.headers["Authorization"] = f"Bearer {person.key}"
                job = wait_for_job(session, f"{nodes[0]}/api/v1/generations/{job_id}", 300)
            assert job["status"] == "succeeded", job

        until(prom, "max(atelier_queue_jobs)", 0)
        until(prom, 'sum(atelier_jobs_finished_total{status="succeeded"})', 12)
        until(prom, 'sum(atelier_quota_images_total{kind="captured"})', 12)
        # A worker serves its metrics before it has loaded the model, and reports itself
        # alive only once it has: the last one may still be warming up when the others have
        # done every job, so its lanes' count is awaited like the figures above.
        until(prom, 'max(atelier_lane_workers_live{lane="priority"})', 2)
        until(prom, 'max(atelier_lane_workers_live{lane="free"})', 2)
        time.sleep(3)  # a few more scrapes of the quiet platform for the picture
        draw(prom, start, time.time())

    # Exactly once: one run per job, one image per job, each image charged once.
    jobs = Job.objects.filter(pk__in=[job_id for _, job_id in submitted])
    assert set(jobs.values_list("status", "attempts")) == {("succeeded", 1)}
    assert Image.objects.filter(job__in=jobs).count() == 12
    for person in payers + free:
        assert QuotaCounter.objects.get(workspace=person.workspace).used == 3
    assert len(set(jobs.values_list("worker", flat=True))) >= 2  # the work was shared
    assert PICTURE.stat().st_size > 10_000
