"""The worker's host cost per image, and what pipelining gives, against a simulated GPU.

Run with `make bench-worker-host` (embedded PostgreSQL and Redis under var/bench). The GPU is
bench.simulated_gpu's stand-in: it sleeps the GPU's time per batch (7 ms per image, about
145 images/s, by default) and returns real 512x512 pictures. Everything else is the real
worker (generation.worker.ticket_run, in this process), database and storage: claims,
heartbeats, events, encoding, files, settling and charging.

Each round drains JOBS queued one-image jobs of 512x512 (one step) in batches of BATCH,
serially (WORKER_PIPELINE=false) and pipelined. Reported, as medians of ROUNDS rounds:

- host_ms_per_image: CPU time of all host work per image in the pipelined runs: this
  process's threads, and the PostgreSQL and Redis processes serving it;
- cores_per_gpu_at_145: the cores that work needs to keep a GPU at 145 images/s busy;
- pipelined_vs_serial: the pipelined worker's images per second over the serial one's;
- gpu_idle: the share of the pipelined run's wall time in which the simulated GPU waited for
  the host, with the GPU slowed to what two cores can feed (max(7 ms, host_ms / 2) per
  image: at 7 ms already if cores_per_gpu_at_145 <= 2).

Goals: cores_per_gpu_at_145 <= 2, pipelined_vs_serial >= 1.5, gpu_idle <= 0.1.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# This process is the worker: it runs as production runs it (DEBUG off, no query log).
from bench.common import PRODUCTION

os.environ.update(PRODUCTION)
os.environ["GENERATION_PIPELINE_MODULE"] = "bench.simulated_gpu"
os.environ["WORKER_LANES"] = "standard"
os.environ["GENERATION_BATCH_SECONDS"] = "0"  # batches of BATCH whatever the estimate
os.environ["LOG_LEVEL"] = "WARNING"

import django

django.setup()

import psutil  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import override_settings  # noqa: E402

from bench import simulated_gpu  # noqa: E402
from bench.worker_throughput import workspace  # noqa: E402
from billing.models import Plan  # noqa: E402
from generation import worker  # noqa: E402
from generation.models import Job  # noqa: E402
from generation.services import job_submit  # noqa: E402

JOBS = 512  # enough that the first claim and the last settle weigh little
BATCH = 16
SIZE = 512
ROUNDS = 3
GPU_IMAGES_PER_SECOND = 145
CORES = 2


def servers() -> list[psutil.Process]:
    """The PostgreSQL and Redis processes of this run (under ATELIER_VAR_DIR)."""
    var = str(Path(settings.VAR_DIR).resolve())
    found = []
    postmaster = Path(var) / "postgres" / "postmaster.pid"
    if postmaster.exists():
        found.append(psutil.Process(int(postmaster.read_text().split()[0])))
    for process in psutil.process_iter(["cmdline"]):
        if "redis" in " ".join(process.info["cmdline"] or []) and var in " ".join(
            process.info["cmdline"] or []
        ):
            found.append(process)
    return found


def cpu_seconds(processes: list[psutil.Process]) -> float:
    """User and system CPU of this process (all its threads) and of the servers and their
    children (PostgreSQL's backends)."""
    total = sum(os.times()[:2])
    for process in processes:
        for one in [process, *process.children(recursive=True)]:
            try:
                times = one.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
    return total


def queue_jobs(space: object, plan: Plan) -> list[str]:
    ids = []
    for n in range(JOBS):
        job = job_submit(
            workspace=space, user=None, api_key=None, plan=plan, model=settings.GENERATION_MODEL,
            params=dict(prompt=f"a red circle {n}", width=SIZE, height=SIZE, steps=1,
                        guidance=1.0, num_images=1, seed=n),
        ).job  # fmt: skip
        ids.append(str(job.pk))
    return ids


def drain(*, pipelined: bool, gpu_ms: float) -> tuple[float, float, float]:
    """(wall seconds, host CPU seconds, simulated GPU busy seconds) to drain JOBS jobs."""
    ids = queue_jobs(*workspace())
    simulated_gpu.SECONDS_PER_IMAGE = gpu_ms / 1000
    simulated_gpu.busy_seconds = 0.0
    processes = servers()
    with override_settings(WORKER_PIPELINE=pipelined, GENERATION_BATCH_SIZE=BATCH):
        cpu = cpu_seconds(processes)
        start = time.perf_counter()
        worker.ticket_run(ids[0])
        wall = time.perf_counter() - start
        cpu = cpu_seconds(processes) - cpu
    done = Job.objects.filter(pk__in=ids, status=Job.Status.SUCCEEDED).count()
    if done != JOBS:
        raise RuntimeError(f"{JOBS - done} of {JOBS} jobs did not succeed")
    return wall, cpu, simulated_gpu.busy_seconds


def main() -> None:
    call_command("migrate", verbosity=0)
    simulated_gpu.warm_up()
    drain(pipelined=True, gpu_ms=7)  # warm up: imports, connections, the first batch
    print(
        f"{JOBS} jobs of {SIZE}x{SIZE}, batches of {BATCH}, simulated GPU 7 ms per image, "
        f"{ROUNDS} rounds; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs",
        flush=True,
    )
    rows = []
    for n in range(ROUNDS):
        serial_wall, serial_cpu, _ = drain(pipelined=False, gpu_ms=7)
        wall, cpu, busy = drain(pipelined=True, gpu_ms=7)
        host_ms = cpu / JOBS * 1000
        gpu_ms = max(7.0, host_ms / CORES)
        if gpu_ms > 7.0:  # the host cannot feed 7 ms on two cores: slow the GPU to what it can
            slow_wall, _, slow_busy = drain(pipelined=True, gpu_ms=gpu_ms)
            idle = 1 - slow_busy / slow_wall
        else:
            idle = 1 - busy / wall
        rows.append((host_ms, serial_wall / wall, idle))
        print(
            f"round {n + 1}: serial {JOBS / serial_wall:.0f} images/s "
            f"({serial_cpu / JOBS * 1000:.2f} CPU ms per image), pipelined {JOBS / wall:.0f} "
            f"images/s ({host_ms:.2f} CPU ms per image); GPU at {gpu_ms:.1f} ms per image "
            f"idle {idle:.1%}; load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
    host_ms, ratio, idle = (median(column) for column in zip(*rows, strict=True))
    print(
        f"RESULT host_ms_per_image={host_ms:.2f} "
        f"cores_per_gpu_at_145={host_ms * GPU_IMAGES_PER_SECOND / 1000:.2f} "
        f"pipelined_vs_serial={ratio:.2f} gpu_idle={idle:.3f}"
    )


if __name__ == "__main__":
    main()
