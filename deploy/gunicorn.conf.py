"""gunicorn settings for dockvol: `gunicorn -c deploy/gunicorn.conf.py 'service.app:create_app()'`.

Worker class gevent: each connection costs a greenlet, not a thread, so clients that trickle
their headers or body, or hold connections idle, cannot starve the others (with gthread, 16 such
connections took every thread of 2 workers x 8). A request's headers must arrive within
`keepalive` seconds (gunicorn reads them under that timeout), its body at a minimum rate
(service/http/limits.py). Requests mostly wait on the engine, and exports and imports stream for
as long as the data takes; greenlets do both. See the README's Performance and Security sections.
"""

import os
import shutil
import tempfile

# Metrics from every worker are summed through files here; set before prometheus_client loads.
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="dockvol-metrics-")
_metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]

bind = os.environ.get("DOCKVOL_LISTEN", "127.0.0.1:8080")
worker_class = os.environ.get("DOCKVOL_WORKER_CLASS", "gevent")
workers = int(os.environ.get("DOCKVOL_WORKERS", "2"))
threads = int(os.environ.get("DOCKVOL_THREADS", "8"))  # gthread only
worker_connections = 1000  # per gevent worker
keepalive = 5  # seconds: the most a request's headers may take to arrive, and an idle connection may stay
# A worker must outlive its slowest engine call, which DOCKVOL_ENGINE_TIMEOUT bounds.
timeout = int(float(os.environ.get("DOCKVOL_ENGINE_TIMEOUT", "10"))) + 20
# On SIGTERM, requests in flight get this long to finish before workers are stopped.
graceful_timeout = int(os.environ.get("DOCKVOL_GRACEFUL_TIMEOUT", "30"))
limit_request_line = 8190  # the schema keeps every URL it admits below this
# dockvol writes the access log itself (one JSON line per request, with the request id and the
# token's name, which gunicorn cannot see); gunicorn's own messages go out as JSON too.
accesslog = None
errorlog = "-"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "service.http.observability.JsonFormatter"}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "json"}},
    "root": {"level": os.environ.get("DOCKVOL_LOG_LEVEL", "INFO"), "handlers": ["stdout"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
    },
}


def post_worker_init(worker):
    # Members of sharing groups are started again after their infrastructure container restarts
    # (service/domain/reconcile.py); one worker per host is elected to do it.
    worker.wsgi.extensions["dockvol"].reconciler.start_in_background()


def child_exit(server, worker):
    # Runs in the master after any worker ends, even a killed one, which could not remove its own
    # helper containers (a leftover helper keeps its volume "in use").
    from prometheus_client import multiprocess

    from service.app import sweep_helpers_of

    multiprocess.mark_process_dead(worker.pid)
    sweep_helpers_of(worker.pid)


def on_exit(server):
    if _metrics_dir.startswith(tempfile.gettempdir()) and "dockvol-metrics-" in _metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
