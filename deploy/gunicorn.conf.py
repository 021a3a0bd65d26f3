"""gunicorn settings for dockvol: `gunicorn -c deploy/gunicorn.conf.py 'service.app:create_app()'`.

Worker class gevent: each connection costs a greenlet, not a thread, so clients that trickle
their headers or body, or hold connections idle, cannot starve the others (with gthread, 16 such
connections took every thread of 2 workers x 8). Slow clients are bounded:
- headers: gunicorn's async worker reads each request (from the connection's start, or the end of
  the previous response, to the end of its headers, after draining any body the app left unread)
  under `gevent.Timeout(keepalive)`, one budget for the whole, and closes the connection when it
  runs out; so `keepalive` is both the most a request's headers may take and the most an idle
  connection stays. With keepalive 0 gunicorn reads them with no limit: on_starting refuses that.
- bodies: a minimum rate, service/http/limits.py (408 below it).
Requests mostly wait on the engine, and exports and imports stream for as long as the data takes;
greenlets do both. See the README's Security notes and docs/design.md section 8."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile

from service.config import Settings

# Metrics from every worker are summed through files here; set before prometheus_client loads.
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="dockvol-metrics-")
_metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]

settings = Settings.from_env()  # every DOCKVOL_ variable, read and checked in one place
bind = settings.listen
worker_class = settings.worker_class
workers = settings.workers
threads = settings.threads  # gthread only
worker_connections = 1000  # per gevent worker
keepalive = 5  # seconds: the most a request's headers may take to arrive, and an idle connection may stay
# A worker must outlive its slowest engine call, which DOCKVOL_ENGINE_TIMEOUT bounds.
timeout = int(settings.engine_timeout) + 20
# On SIGTERM, requests in flight get this long to finish before workers are stopped.
graceful_timeout = settings.graceful_timeout
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
    "root": {"level": settings.log_level, "handlers": ["stdout"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
    },
}


def on_starting(server):
    # gunicorn's gevent worker reads headers under a `keepalive` timeout only when keepalive is on.
    if "gevent" not in server.cfg.worker_class_str:
        server.log.warning(
            "worker class %s: slow or idle clients each hold a thread, and neither headers nor bodies have "
            "a time limit; gevent (the default) bounds both",
            server.cfg.worker_class_str,
        )
    elif server.cfg.keepalive < 1:
        server.log.error(
            "keepalive %s would let request headers take forever; it must be at least 1", server.cfg.keepalive
        )
        on_exit(server)
        sys.exit(1)


def post_worker_init(worker):
    # Ctrl-C sends SIGINT to the whole foreground process group, and the master answers its own
    # with a SIGQUIT to every worker: a worker that also quit on its SIGINT ran gunicorn's quit
    # twice, and gevent printed the second one's SystemExit as a traceback. The master decides.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Members of sharing groups are started again after their infrastructure container restarts
    # (service/domain/reconcile.py); one worker per host is elected to do it.
    worker.wsgi.extensions["dockvol"].reconciler.start_in_background()
    # Backup policies fire at their times (service/domain/backups/scheduler.py): every worker ticks, and
    # a claim in the state dir lets exactly one of them fire each time.
    worker.wsgi.extensions["dockvol"].scheduler.start_in_background()
    # Reads are answered from a view of the engine fed by its events (service/engine/viewed.py);
    # what answered writes changed is shared by every worker through a file mapped in each.
    view = worker.wsgi.extensions["dockvol"].view
    view.share(os.path.join(_metrics_dir, "written"))
    view.start_in_background()
    # Backup runs and restores are dockvol's own records, not the engine's: the watch polls them.
    worker.wsgi.extensions["dockvol"].record_feed.start_in_background()


def worker_exit(server, worker):
    # Runs in a worker that ends gracefully (never in a killed one): it removes its own helpers and
    # live metrics with the app it has loaded, and marks that it did, so that child_exit need not
    # start a process for it (about a second of CPU per worker, at every stop and restart).
    try:
        from service.app import worker_leaving

        if worker_leaving(os.getpid()):
            open(_left_cleanly(os.getpid()), "x").close()
    except Exception as exc:  # a worker whose app never loaded: child_exit does it all
        server.log.warning("worker %s could not clean up after itself: %s", os.getpid(), exc)


def _left_cleanly(pid):
    return os.path.join(_metrics_dir, f"left-cleanly-{pid}")


def child_exit(server, worker):
    # Runs in the master after any worker ends, even a killed one, which could not remove its own
    # helper containers (a leftover helper keeps its volume "in use"). In a process of its own:
    # loading the app here would load ssl and urllib3 into the master, and every worker forked
    # after that would be patched by gevent too late (urllib3 keeps the unpatched SSLContext, whose
    # sockets block the whole worker).
    try:
        os.remove(_left_cleanly(worker.pid))
        server.log.info("worker %s left cleanly: no helper or live metric of it is left", worker.pid)
        return
    except FileNotFoundError:
        pass
    try:
        subprocess.run([sys.executable, "-c", AFTER_WORKER, str(worker.pid)], timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        server.log.error("cleaning up after worker %s took over %s s; its helpers stay", worker.pid, timeout)
    except OSError as exc:
        server.log.error("could not clean up after worker %s: %s", worker.pid, exc)


AFTER_WORKER = "import sys; from service.app import after_worker; after_worker(int(sys.argv[1]))"


def on_exit(server):
    if _metrics_dir.startswith(tempfile.gettempdir()) and "dockvol-metrics-" in _metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
