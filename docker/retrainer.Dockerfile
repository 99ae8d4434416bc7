# syntax=docker/dockerfile:1.7
# driftloop retrainer on NVIDIA GPUs: LoRA fine-tuning (transformers + PEFT on CUDA torch) with the
# same engine stack as inference, run as `python -m driftloop.retrainer`.
#
#   docker build -f docker/retrainer.Dockerfile -t driftloop/retrainer:0.1.0 .
#
# Same pins as docker/inference.Dockerfile: vllm==0.33.0 wants torch==2.14.0 (CUDA 13.0); uv.lock
# (the CPU build) only supplies the shared core's pins. Runs on CPU too (slowly) when no GPU is given.
ARG CUDA_IMAGE=nvidia/cuda:13.0.0-runtime-ubuntu24.04
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

FROM ${CUDA_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1 \
    UV_PYTHON_DOWNLOADS=automatic
RUN uv python install 3.11.18 && uv venv /opt/venv --python 3.11.18
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
# --no-config: the project's [tool.uv] overrides pin the CPU torch (2.13.0).
RUN uv export --frozen --no-dev --no-hashes --no-emit-project -o /tmp/core.txt \
    && uv pip install --no-config --python /opt/venv/bin/python -r /tmp/core.txt \
        vllm==0.33.0 torch==2.14.0 "transformers>=5.16,<5.20" "peft>=0.17" "safetensors>=0.4" "tokenizers>=0.21"
COPY services ./services
RUN uv pip install --no-config --no-deps --python /opt/venv/bin/python /src

FROM ${CUDA_IMAGE}
LABEL org.opencontainers.image.title="driftloop-retrainer" \
      org.opencontainers.image.description="driftloop retrainer: data cleaning, LoRA training, gate, rollout" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --gid 10001 driftloop \
 && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/driftloop --shell /usr/sbin/nologin driftloop \
 && mkdir -p /var/lib/driftloop/retrainer /models /adapters \
 && chown -R 10001:10001 /var/lib/driftloop /adapters
COPY --from=build /opt/python /opt/python
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TRITON_CACHE_DIR=/home/driftloop/.cache/triton \
    NUMBA_CACHE_DIR=/home/driftloop/.cache/numba \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    VLLM_NO_USAGE_STATS=1 \
    DO_NOT_TRACK=1 \
    DRIFTLOOP_RETRAINER_HOST=0.0.0.0 \
    DRIFTLOOP_RETRAINER_METRICS_PORT=9402 \
    DRIFTLOOP_RETRAINER_BASE_MODEL=/models/base \
    DRIFTLOOP_RETRAINER_ADAPTER_ROOT=/adapters \
    DRIFTLOOP_RETRAINER_STATE_DIR=/var/lib/driftloop/retrainer
USER 10001:10001
WORKDIR /home/driftloop
EXPOSE 9402
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/metrics' % os.environ.get('DRIFTLOOP_RETRAINER_METRICS_PORT', '9402'), timeout=4)"]
CMD ["python", "-m", "driftloop.retrainer"]
