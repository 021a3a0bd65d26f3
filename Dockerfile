# dockvol's image: a wheel built in one stage, installed with no build tools in the next, with
# its dependencies pinned and hash-checked (requirements/runtime.txt), run by a non-root user.
# Needs access to the engine socket: see the README's Deploy section.
# The base image goes by its tag. To pin it, append the digest that the registry gives for the
# tag where it can be reached, and refresh it with each rebuild that should take the base's fixes:
#   docker pull python:3.12-slim && docker inspect -f '{{index .RepoDigests 0}}' python:3.12-slim
#   docker build --build-arg BASE_IMAGE=python:3.12-slim@sha256:DIGEST .
ARG BASE_IMAGE=python:3.12-slim

FROM ${BASE_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
COPY requirements/build.txt ./
# pip, setuptools and wheel pinned with hashes (requirements/build.txt); no build isolation, so
# the wheel is built with these and nothing unpinned is fetched for it.
RUN python3 -m venv /opt/build \
 && /opt/build/bin/pip install --no-cache-dir --require-hashes -r build.txt \
 && /opt/build/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels .

FROM ${BASE_IMAGE}
# restic, the backup engine (Debian's), run by dockvol as a subprocess.
RUN apt-get update -q && apt-get install -y -q --no-install-recommends restic && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
COPY requirements/runtime.txt /wheels/
RUN python3 -m venv /opt/dockvol \
 && /opt/dockvol/bin/pip install --no-cache-dir --require-hashes -r /wheels/runtime.txt \
 && /opt/dockvol/bin/pip install --no-cache-dir --no-deps --no-index --find-links /wheels dockvol \
 && rm -rf /wheels \
 && (getent group dockvol || groupadd --system dockvol) \
 && (getent passwd dockvol || useradd --system --gid dockvol --home-dir /nonexistent --shell /usr/sbin/nologin dockvol) \
 && install -d -m 700 -o dockvol -g dockvol /var/lib/dockvol
COPY deploy/gunicorn.conf.py /etc/dockvol/gunicorn.conf.py
ENV PATH=/opt/dockvol/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DOCKVOL_LISTEN=0.0.0.0:8080 \
    DOCKER_HOST=unix:///var/run/docker.sock
USER dockvol
WORKDIR /tmp
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python3", "-c", "import os, urllib.request; port = os.environ['DOCKVOL_LISTEN'].rsplit(':', 1)[1]; urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4)"]
CMD ["gunicorn", "-c", "/etc/dockvol/gunicorn.conf.py", "service.app:create_app()"]
