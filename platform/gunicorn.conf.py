# gunicorn settings for the web nodes; every value can be overridden on the command line.
# The app is config.asgi under uvicorn workers: each worker is one event loop, so requests that
# wait for their images (the OpenAI-compatible API) sleep there instead of each holding one of
# a fixed number of threads, and the native API's synchronous views run in threads as usual.
import os

# Django's advice under ASGI: no persistent database connections in the web process (a
# request's connection belongs to a thread that ends with it). Workers keep theirs.
os.environ.setdefault("DB_CONN_MAX_AGE", "0")

workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "uvicorn_worker.UvicornWorker"
timeout = 60
graceful_timeout = 20
accesslog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
