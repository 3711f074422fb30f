# gunicorn settings for the web nodes; every value can be overridden on the command line.
# The app is config.asgi under uvicorn workers (uvloop and httptools): each worker is one event
# loop that runs synchronous views on a fixed pool of WEB_THREADS threads through Django's WSGI
# handler and the async OpenAI-compatible views, which wait for their images, on the loop
# itself (config/front_door.py). bench/front_door.py measured it against gthread WSGI; the
# README's "Web server" section has the figures and the sizing rules.
import os

workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "uvicorn_worker.UvicornWorker"
_threads = int(os.environ.setdefault("WEB_THREADS", "8"))
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
accesslog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
