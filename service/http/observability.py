"""Logs and metrics: one JSON log line per request, and Prometheus metrics that stay right when
gunicorn runs several workers (prometheus_client's multiprocess mode, set up by
deploy/gunicorn.conf.py through PROMETHEUS_MULTIPROC_DIR)."""

from __future__ import annotations

import json
import logging
import os
import time

from flask import Blueprint, Response, g, has_request_context, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from .. import times

REQUESTS = Counter("dockvol_http_requests_total", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram("dockvol_http_request_duration_seconds", "Time to answer a request", ["method", "route"])
ENGINE_LATENCY = Histogram("dockvol_engine_call_duration_seconds", "Time of one engine call", ["operation"])
ENGINE_ERRORS = Counter("dockvol_engine_call_errors_total", "Engine calls that failed", ["operation", "error"])
VIEW_RELISTS = Counter("dockvol_view_relists_total", "Listings the view of the engine made (at start, after a break)")
VIEW_PRIMED = Gauge(
    "dockvol_view_primed_time_seconds", "When each worker's view last listed (its age: now minus this)", ["pid"]
)
VIEW_LAG = Histogram(
    "dockvol_view_event_lag_seconds",
    "From an engine event to the view applying it",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
)
WATCHERS = Gauge("dockvol_watchers", "Clients connected to GET /api/v1/events", multiprocess_mode="livesum")
WATCHERS_DROPPED = Counter("dockvol_watchers_dropped_total", "Watch clients dropped for not keeping up")
BACKUPS = Counter("dockvol_backups_total", "Backups that ended, by how", ["status"])
BACKUP_ADDED = Counter("dockvol_backup_added_bytes_total", "New data the repositories stored for completed backups")
BACKUP_DURATION = Histogram(
    "dockvol_backup_duration_seconds",
    "Time of one backup, start to end",
    buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600, float("inf")),
)
BACKUP_LAST_SUCCESS = Gauge(
    "dockvol_backup_last_success_timestamp_seconds",
    "When a volume's last completed backup ended (policy: empty for one on request)",
    ["policy", "volume"],
    multiprocess_mode="max",
)
VIEW_READS = Counter("dockvol_view_reads_total", "Engine reads, by where they were answered", ["source"])

access_log = logging.getLogger("dockvol.access")
blp = Blueprint("metrics", __name__)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC), level, logger, message, request id, and any `extra`
    fields. Kept by hand rather than python-json-logger: as fast (18 against 19 us a record), and
    these twenty lines are what the library would need overridden to write these fields."""

    PLAIN = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": times.text(int(record.created) * 1_000_000_000 + int(record.msecs) * 1_000_000, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        if has_request_context() and "request_id" in g:
            line["request_id"] = g.request_id
        line.update({k: v for k, v in vars(record).items() if k not in self.PLAIN})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def observe_engine_call(operation: str, seconds: float, error: str | None) -> None:
    ENGINE_LATENCY.labels(operation).observe(seconds)
    if error:
        ENGINE_ERRORS.labels(operation, error).inc()


def observe_view(what: str, value: float) -> None:
    """What the view of the engine reports (service/engine/viewed.py)."""
    if what == "relist":
        VIEW_RELISTS.inc()
        VIEW_PRIMED.labels(str(os.getpid())).set(time.time())
    elif what == "event_lag":
        VIEW_LAG.observe(value)
    else:  # "read_view" / "read_engine"
        VIEW_READS.labels(what.removeprefix("read_")).inc()


def observe_watch(what: str, value: float) -> None:
    """What the watch reports (domain/watch.py): "watchers" (+1/-1), "dropped"."""
    if what == "watchers":
        WATCHERS.inc(value)
    else:
        WATCHERS_DROPPED.inc()


def observe_backup(status: str, seconds: float | None, added_bytes: int | None, volume: str, policy: str) -> None:
    """A backup that ended (domain/backups/runs.py): `completed` or `failed`."""
    BACKUPS.labels(status).inc()
    if seconds is not None:
        BACKUP_DURATION.observe(seconds)
    if status == "completed":
        BACKUP_ADDED.inc(added_bytes or 0)
        BACKUP_LAST_SUCCESS.labels(policy, volume).set(time.time())


def start_clock() -> None:
    """The first thing a request does (http/hooks.py)."""
    g.started = time.perf_counter()


def account(response: Response, token: str | None) -> Response:
    """The request's log line and metrics, `token` naming its caller; the last thing it does."""
    elapsed = time.perf_counter() - g.started
    route = request.url_rule.rule if request.url_rule else "unmatched"
    REQUESTS.labels(request.method, route, str(response.status_code)).inc()
    LATENCY.labels(request.method, route).observe(elapsed)
    access_log.info(
        "%s %s %s",
        request.method,
        request.path,
        response.status_code,
        extra={
            "method": request.method,
            "path": request.path,
            "route": route,
            "status": response.status_code,
            "duration_ms": round(elapsed * 1000, 2),
            "token": token,
        },
    )
    return response


@blp.route("/metrics")
def metrics() -> Response:
    """Prometheus text format; open like the health endpoints."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # prometheus_client's own variable (gunicorn.conf.py sets it)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
    return Response(generate_latest(), content_type=CONTENT_TYPE_LATEST)
