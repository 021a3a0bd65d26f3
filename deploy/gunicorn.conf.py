"""gunicorn settings for dockvol (`gunicorn -c deploy/gunicorn.conf.py 'service.app:create_app()'`)."""

import os

bind = os.environ.get("DOCKVOL_LISTEN", "127.0.0.1:8080")
worker_class = "gthread"
workers = int(os.environ.get("DOCKVOL_WORKERS", "2"))
threads = int(os.environ.get("DOCKVOL_THREADS", "8"))
# A worker must outlive its slowest engine call, which DOCKVOL_ENGINE_TIMEOUT bounds.
timeout = int(float(os.environ.get("DOCKVOL_ENGINE_TIMEOUT", "10"))) + 20
graceful_timeout = 30
limit_request_line = 8190  # the schema keeps every URL it admits below this
accesslog = "-"
errorlog = "-"


def child_exit(server, worker):
    # Runs in the master after any worker ends, even a killed one, which could not remove its own
    # helper containers (a leftover helper keeps its volume "in use").
    from service.app import sweep_helpers_of

    sweep_helpers_of(worker.pid)
