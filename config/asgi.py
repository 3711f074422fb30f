"""The web application as gunicorn's uvicorn workers serve it (platform/gunicorn.conf.py).

Synchronous views run through Django's WSGI handler on a fixed thread pool, the async
(waiting) views through its ASGI handler on the event loop; config/front_door.py says why.
WEB_THREADS, WEB_MAX_QUEUED, WEB_MAX_QUEUE_SECONDS and WEB_MAX_WAITING bound what one
process works on at once.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from django.conf import settings
from django.core.asgi import get_asgi_application
from django.core.handlers.wsgi import WSGIHandler

from config.front_door import FrontDoor

django_asgi = get_asgi_application()  # sets Django up
application = FrontDoor(
    wsgi_app=WSGIHandler(),
    asgi_app=django_asgi,
    threads=settings.WEB_THREADS,
    max_queued=settings.WEB_MAX_QUEUED,
    max_waiting=settings.WEB_MAX_WAITING,
    max_queue_seconds=settings.WEB_MAX_QUEUE_SECONDS,
    max_body_bytes=settings.REQUEST_MAX_BYTES,
)
