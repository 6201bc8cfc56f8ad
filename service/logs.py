"""Structured logs: every log record of a service process as one JSON line.

A line always has `ts` (RFC 3339 UTC, milliseconds), `level`, `logger` and
`message`; an event adds its own fields with `log_event`, e.g. the API's line
per request (api/observe.py) and the worker's line per task (tasks/observe.py).
A traceback goes in `exc`, as text inside the same line.

What may be logged is decided where a line is written, field by field: request
and task lines carry ids, routes, statuses, codes and durations, never headers,
bodies, URLs' query strings, keys, tokens or image bytes. Libraries that log
whole URLs at INFO (httpx, urllib3) are held to WARNING.

`configure_logging` is called once per process at its edge (`avatar-prep
worker`); `uvicorn_log_config` is the same set-up for `avatar-prep serve`,
which uvicorn applies in each of its processes.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

# Loggers that would write request URLs (with presigned or user-given query
# strings) at INFO.
QUIET_LOGGERS = ("httpx", "httpcore", "urllib3", "botocore", "boto3", "s3transfer")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines inside values are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update({k: v for k, v in fields.items() if k not in entry})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def log_event(
    logger: logging.Logger, message: str, level: int = logging.INFO, **fields: Any
) -> None:
    """Log `message` with `fields` as top-level keys of its JSON line."""
    logger.log(level, message, extra={"fields": fields})


def configure_logging(level: str = "INFO", stream: IO[str] | None = None) -> None:
    """Make every record of this process a JSON line on `stream` (stderr)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # Python warnings become JSON lines too
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def uvicorn_log_config(level: str = "INFO") -> dict[str, Any]:
    """uvicorn's `log_config`: its own loggers and ours as JSON lines on stderr. Its
    access log is left off by the caller (`access_log=False`): the API writes its
    own line per request, with the route template, request id and account."""
    quiet = {name: {"level": "WARNING"} for name in QUIET_LOGGERS}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            # uvicorn's loggers have handlers of their own unless told otherwise.
            "uvicorn": {"handlers": [], "propagate": True, "level": level.upper()},
            "uvicorn.error": {"handlers": [], "propagate": True, "level": level.upper()},
            "uvicorn.access": {"handlers": [], "propagate": True, "level": "WARNING"},
            **quiet,
        },
    }
