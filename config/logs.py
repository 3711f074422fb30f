"""Logging: a request id on every line, and LOG_FORMAT=text|json.

The request id lives in a context variable, set by the front door (config/front_door.py)
and by RequestMiddleware for each request, and by the worker for the jobs of a batch (the
request id that admitted each job is stored on its row). A filter copies it, and the job
ids, onto every record, so each line of a request and of the jobs it created says which
request it belongs to. JSON lines carry them as fields; text lines end with them.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
job_ids_var: contextvars.ContextVar[str] = contextvars.ContextVar("job_ids", default="")

# An incoming X-Request-ID is kept when it is a reasonable token (a load balancer's or a
# client's); anything else (too long, odd characters) is replaced by a fresh one.
_ACCEPTABLE_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


def request_id_from(incoming: str | None) -> str:
    if incoming and _ACCEPTABLE_ID.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


def current_request_id() -> str:
    return request_id_var.get()


@contextlib.contextmanager
def job_context(*, job_ids: list[str], request_ids: list[str]) -> Iterator[None]:
    """Log lines inside carry these jobs' ids and the request ids that admitted them."""
    ids = ",".join(dict.fromkeys(request_id for request_id in request_ids if request_id))
    jobs_token = job_ids_var.set(",".join(job_ids))
    request_token = request_id_var.set(ids)
    try:
        yield
    finally:
        job_ids_var.reset(jobs_token)
        request_id_var.reset(request_token)


class ContextFilter(logging.Filter):
    """Puts the request id and job ids of the current context on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", ""):
            record.request_id = request_id_var.get()
        if not getattr(record, "job_id", ""):
            record.job_id = job_ids_var.get()
        return True


class RefusalsAreNotErrors(logging.Filter):
    """Drops django.request's WARNING per 4xx and ERROR per 501/503: a refusal is logged
    once at INFO with its code (RequestMiddleware's line); real server errors stay."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        return not (isinstance(status, int) and (status < 500 or status in (501, 503)))


_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request and job ids, any
    `extra` fields, and the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name in _STANDARD or name.startswith("_") or value in ("", None):
                continue
            if name in ("request", "server_time"):  # django's: not serialisable, no news
                continue
            line[name] = value if isinstance(value, int | float | bool | str) else str(value)
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The readable format `make run` prints, with the request id at the end of a line."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        tags = [
            f"{name}={value}"
            for name in ("code", "request_id", "job_id")
            if (value := getattr(record, name, ""))
        ]
        return f"{text} [{' '.join(tags)}]" if tags else text


def logging_config(*, log_format: str, level: str) -> dict[str, Any]:
    """settings.LOGGING: every line through one handler, in the chosen format."""
    formatter = "config.logs.JsonFormatter" if log_format == "json" else "config.logs.TextFormatter"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "context": {"()": "config.logs.ContextFilter"},
            "refusals": {"()": "config.logs.RefusalsAreNotErrors"},
        },
        "formatters": {"line": {"()": formatter}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "line",
                "filters": ["context"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.request": {"filters": ["refusals"]},
            # Celery's own task lines carry the ticket's id; ours carry the job's.
            "celery": {"level": level},
        },
    }
