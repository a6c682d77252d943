# syntax=docker/dockerfile:1
# Build stage: compilers live here only.
FROM python:3.12-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY core ./core
COPY bot ./bot
COPY webhook_server ./webhook_server
COPY workers ./workers
COPY migrations ./migrations
# The protocol doubles and the demo (tv2dydx demo): the product itself never imports them.
COPY doubles ./doubles
COPY demo ./demo
# The same install command CI runs in a fresh virtualenv (.ci/run, "docker install").
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir .

# Runtime stage: slim, no compilers, non-root.
FROM python:3.12-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp/matplotlib
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin tv2dydx
COPY --from=build /opt/venv /opt/venv
USER tv2dydx
WORKDIR /home/tv2dydx
EXPOSE 8080
# Liveness of the web server; the worker and bot services override it in docker-compose.yml.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('WEB_PORT', '8080'), timeout=4)"]
ENTRYPOINT ["tv2dydx"]
CMD ["run"]
