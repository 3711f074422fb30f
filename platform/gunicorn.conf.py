# gunicorn settings for the web nodes; every value can be overridden on the command line.
# The app is config.asgi under uvicorn workers (uvloop and httptools): each worker is one event
# loop that runs synchronous views on a fixed pool of WEB_THREADS threads through Django's WSGI
# handler and the async OpenAI-compatible views, which wait for their images, on the loop
# itself (config/front_door.py). bench/front_door.py measured it against gthread WSGI; the
# README's "Web server" section has the figures and the sizing rules.
import os
import shutil

from config import web_balance
from config.env import env_bool

workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# uvicorn's worker whose connections move to the process with room (config/web_balance.py).
worker_class = "config.web_worker.Worker"
if env_bool("WEB_BALANCE_CONNECTIONS", True):
    web_balance.table = web_balance.ConnectionTable()  # before the fork: the workers share it
_threads = int(os.environ.setdefault("WEB_THREADS", "4"))
# Database connections per web process: one per thread, and a few for the waiting views'
# short reads. Past it a request waits DB_POOL_TIMEOUT s, then is answered 503.
os.environ.setdefault("DB_POOL_MAX_SIZE", str(_threads + 4))
# A statement past this many seconds is cancelled and its request answered 503, never a hang.
os.environ.setdefault("DB_STATEMENT_TIMEOUT", "15")
# Connections the kernel holds for a busy worker; past the in-flight bounds each one is
# still answered (503 with Retry-After), so a burst is never dropped at accept.
backlog = int(os.environ.get("WEB_BACKLOG", "4096"))
timeout = 60
graceful_timeout = 20
keepalive = 5
# No access log of gunicorn's: Django logs one line per request itself, with its request id,
# status, time and a refusal's code, in LOG_FORMAT (config/request_middleware.py).
accesslog = None
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# Prometheus multiprocess mode (config/metrics.py): every web process writes its metrics to
# files in PROMETHEUS_MULTIPROC_DIR and /metrics adds them up. The folder is this server's
# alone (by default var/metrics/web-<master pid>, removed at exit), emptied at start so that a
# restart begins at zero, as Prometheus expects of a restarted target.
_var = os.environ.get("ATELIER_VAR_DIR") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "var"
)
_own_metrics_dir = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.path.join(
    _var, "metrics", f"web-{os.getpid()}"
)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


def on_starting(server: object) -> None:
    os.makedirs(_metrics_dir, exist_ok=True)
    for name in os.listdir(_metrics_dir):
        if name.endswith(".db"):
            os.remove(os.path.join(_metrics_dir, name))


def pre_fork(server: object, worker: object) -> None:
    if web_balance.table is not None:
        taken = {w.connection_slot for w in server.WORKERS.values()}  # type: ignore[attr-defined]
        worker.connection_slot = web_balance.table.free_slot(taken)  # type: ignore[attr-defined]


def post_worker_init(worker: object) -> None:
    slot = getattr(worker, "connection_slot", None)
    if web_balance.table is not None and slot is not None:
        web_balance.table.serve(slot)  # the application is loaded: it takes connections now
    # Everything loaded so far (Django, the app, its modules: about 120,000 objects) lives as
    # long as the process: move it out of the garbage collector's sight. A full collection
    # then walks only what requests made since, 15-25 ms instead of about 100 ms here, and
    # those pauses were a submission's slowest moments.
    import gc

    gc.collect()
    gc.freeze()


def child_exit(server: object, worker: object) -> None:
    slot = getattr(worker, "connection_slot", None)
    if web_balance.table is not None and slot is not None:
        web_balance.table.clear(slot)  # whatever the worker died of, its count goes with it
    # A dead worker's live gauges go; its counters stay in the totals.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]


def on_exit(server: object) -> None:
    if _own_metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
