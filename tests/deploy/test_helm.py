"""The Helm chart: lint, render with each values set, validate the manifests against the Kubernetes
JSON schemas offline (kubernetes-validate bundles them), and check what each values set promises."""

from __future__ import annotations

import ast
import base64
import json
from pathlib import Path

import pytest
import yaml

from tests.deploy.paths import CHART, REPO

EXAMPLES = CHART / "examples"
# the oldest Kubernetes the chart supports (native gRPC probes) and the newest schemas bundled
KUBE_VERSIONS = ("1.27.0", "1.37.0")
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}

VALUE_SETS = {
    "default": [],
    "production-gpu": ["-f", str(EXAMPLES / "production-gpu-values.yaml")],
    "strimzi": ["-f", str(EXAMPLES / "strimzi-values.yaml")],
    "inline-secrets-tls": ["--set", "auth.adminToken=s3cret", "--set", "kafka.securityProtocol=SASL_PLAINTEXT",
                           "--set", "kafka.sasl.mechanism=PLAIN", "--set", "kafka.sasl.username=u",
                           "--set", "kafka.sasl.password=p4ss", "--set", "tls.enabled=true",
                           "--set", "tls.cert=CERT", "--set", "tls.key=KEY"],
    "everything-on": ["--set", "serviceMonitor.enabled=true", "--set", "prometheusRule.enabled=true",
                      "--set", "grafana.dashboards.enabled=true", "--set", "inference.autoscaling.enabled=true",
                      "--set", "inference.pdb.enabled=true", "--set", "monitor.persistence.enabled=false",
                      "--set", "monitor.replicas=1", "--set", "adapters.persistence.enabled=false",
                      "--set", "kafka.tls.clientSecret=kafka-user", "--set", "kafka.tls.caSecret=kafka-ca",
                      "--set-json", 'model.initContainers=[{"name": "fetch-model", "image": "busybox:1.37", '
                                    '"command": ["true"]}]',
                      "--set-json", 'networkPolicy.clientsFrom=[{"namespaceSelector": {"matchLabels": '
                                    '{"team": "apps"}}}]'],
    "monitor-only": ["--set", "inference.enabled=false", "--set", "retrainer.enabled=false"],
    "insecure-admin": ["--set", "auth.allowUnauthenticatedAdmin=true"],
    "no-http": ["--set", "inference.http.enabled=false"],
}


def render(run, *args: str) -> list[dict]:
    out = run("helm", "template", "dl", str(CHART), "--namespace", "driftloop", *args)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(scope="module")
def rendered(run) -> dict[str, list[dict]]:
    return {name: render(run, *args) for name, args in VALUE_SETS.items()}


def find(docs: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def one(docs: list[dict], kind: str, name: str) -> dict:
    found = find(docs, kind, name)
    assert len(found) == 1, f"{kind}/{name}: {len(found)} rendered"
    return found[0]


def container(deployment: dict, name: str | None = None) -> dict:
    cs = deployment["spec"]["template"]["spec"]["containers"]
    return cs[0] if name is None else next(c for c in cs if c["name"] == name)


# -- lint, render, schema validation ---------------------------------------------------------------

@pytest.mark.parametrize("values", ["default", "production-gpu", "strimzi"])
def test_helm_lint(run, values):
    out = run("helm", "lint", "--strict", str(CHART), *VALUE_SETS[values])
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("values", list(VALUE_SETS))
def test_manifests_validate_against_kubernetes_schemas(run, rendered, tmp_path, values):
    docs = rendered[values]
    builtin = [d for d in docs if (d["apiVersion"], d["kind"]) not in CRD_KINDS]
    path = tmp_path / f"{values}.yaml"
    path.write_text(yaml.safe_dump_all(builtin))
    for version in KUBE_VERSIONS:
        out = run("kubernetes-validate", "--strict", "--quiet", "-k", version, str(path))
        assert out.returncode == 0, f"Kubernetes {version}: {out.stdout}{out.stderr}"
        assert "Couldn't find schema" not in out.stdout + out.stderr
    # the CRDs have no bundled schema: check their shape by hand
    for d in docs:
        if (d["apiVersion"], d["kind"]) in CRD_KINDS:
            assert d["metadata"]["name"] and d["spec"]
    names = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert len(names) == len(set(names)), "two resources share a kind and name"


def test_values_schema_rejects_bad_values(run):
    for bad in (["--set", "inference.engine=tgi"], ["--set", "kafka.securityProtocol=TLS"],
                ["--set", "inference.replcas=2"], ["--set", "monitor.backend=river"],
                ["--set", "inference.vllm.gpuMemoryUtilization=1.5"],
                # two monitors would split every stream's state and raise two triggers per episode
                ["--set", "monitor.replicas=2"], ["--set", "inference.maxConcurrentRpcs=0"]):
        out = run("helm", "template", "dl", str(CHART), *bad)
        assert out.returncode != 0 and "schema" in out.stderr, bad


def test_chart_refuses_inconsistent_values(run):
    out = run("helm", "template", "dl", str(CHART), "--set", "tls.enabled=true")
    assert out.returncode != 0 and "tls.existingSecret" in out.stderr


# -- settings: every environment variable the chart sets is a real setting --------------------------

def _fields(path: Path, cls: str) -> set[str]:
    tree = ast.parse(path.read_text())
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == cls)
    return {s.target.id.upper() for s in node.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)}


SETTINGS = {
    "DRIFTLOOP_KAFKA_": ("core/settings.py", "KafkaSettings"),
    "DRIFTLOOP_INFERENCE_": ("inference/settings.py", "InferenceSettings"),
    "DRIFTLOOP_MONITOR_": ("monitor/settings.py", "MonitorSettings"),
    "DRIFTLOOP_RETRAINER_": ("retrainer/settings.py", "RetrainerSettings"),
}


def _known(name: str) -> bool:
    for prefix, (file, cls) in SETTINGS.items():
        if name.startswith(prefix):
            path = REPO / "services" / "driftloop" / file
            if not path.exists():  # a service not written yet: its names cannot be checked
                return True
            return name.removeprefix(prefix) in _fields(path, cls) - {"KAFKA", "MODEL_CONFIG"}
    return False


@pytest.mark.parametrize("values", list(VALUE_SETS))
def test_environment_names_are_settings(rendered, values):
    docs = rendered[values]
    names = {k for cm in find(docs, "ConfigMap") if not cm["metadata"]["name"].startswith("dl-driftloop-dashboard")
             for k in cm["data"]}
    for dep in find(docs, "Deployment"):
        for c in dep["spec"]["template"]["spec"]["containers"]:
            names |= {e["name"] for e in c.get("env", [])}
    unknown = sorted(n for n in names if not _known(n))
    assert not unknown, f"not a field of the services' settings classes: {unknown}"


# -- what each values set promises ----------------------------------------------------------------

def test_default_release(rendered):
    docs = rendered["default"]
    kinds = {d["kind"] for d in docs}
    assert kinds == {"ServiceAccount", "ConfigMap", "PersistentVolumeClaim", "Service", "Deployment", "Secret",
                     "NetworkPolicy"}

    inf = one(docs, "Deployment", "dl-driftloop-inference")
    c = container(inf)
    assert c["command"] == ["python", "-m", "driftloop.inference"]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"grpc": 50051, "http": 8000, "admin": 50052,
                                                                  "metrics": 9400}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["grpc"] == {"port": 50051, "service": ""}, probe
    assert [e["name"] for e in c["env"]] == ["DRIFTLOOP_INFERENCE_REPLICA", "DRIFTLOOP_INFERENCE_ADMIN_TOKEN"]
    assert {r["configMapRef"]["name"] for r in c["envFrom"]} == {"dl-driftloop-kafka", "dl-driftloop-inference"}
    cm = one(docs, "ConfigMap", "dl-driftloop-inference")["data"]
    assert cm["DRIFTLOOP_INFERENCE_HOST"] == "0.0.0.0" and cm["DRIFTLOOP_INFERENCE_PORT"] == "50051"
    # the OpenAI-compatible HTTP API, on by default, on its own named port
    assert cm["DRIFTLOOP_INFERENCE_OPENAI_HTTP"] == "true" and cm["DRIFTLOOP_INFERENCE_HTTP_PORT"] == "8000"
    assert cm["DRIFTLOOP_INFERENCE_SPOOL_MAX_BYTES"] == "268435456"
    assert cm["DRIFTLOOP_INFERENCE_GPU_MEMORY_UTILIZATION"] == "0.9"
    assert cm["DRIFTLOOP_INFERENCE_MAX_CONCURRENT_RPCS"] == "256"
    # the spool is an emptyDir: the pod waits for its drain, and what is left is counted as lost
    assert cm["DRIFTLOOP_INFERENCE_SPOOL_EPHEMERAL"] == "true" and cm["DRIFTLOOP_INFERENCE_SPOOL_DRAIN_S"] == "60"
    assert inf["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 20 + 60 + 30
    assert "DRIFTLOOP_INFERENCE_ALLOW_UNAUTHENTICATED_ADMIN" not in cm
    assert inf["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True

    mon = one(docs, "Deployment", "dl-driftloop-monitor")
    assert container(mon)["command"] == ["python", "-m", "driftloop.monitor"]
    assert container(mon)["ports"][0]["containerPort"] == 9401
    assert mon["spec"]["strategy"]["type"] == "Recreate"  # one sqlite writer on a RWO claim
    init = mon["spec"]["template"]["spec"]["initContainers"][0]
    assert init["name"] == "ensure-topics" and "ensure_topics" in init["command"][-1]

    ret = one(docs, "Deployment", "dl-driftloop-retrainer")
    assert container(ret)["command"] == ["python", "-m", "driftloop.retrainer"]
    assert container(ret)["ports"][0]["containerPort"] == 9402
    assert ret["spec"]["replicas"] == 1 and ret["spec"]["strategy"] == {"type": "Recreate"}
    rcm = one(docs, "ConfigMap", "dl-driftloop-retrainer")["data"]
    assert rcm["DRIFTLOOP_RETRAINER_INFERENCE_ADDRESS"] == "dl-driftloop-inference:50051"
    assert rcm["DRIFTLOOP_RETRAINER_INFERENCE_ADMIN_ADDRESS"] == "dl-driftloop-inference:50052"
    assert cm["DRIFTLOOP_INFERENCE_ADMIN_PORT"] == "50052"

    # one ReadWriteMany adapter claim: read-only in inference, writable in the retrainer
    pvc = one(docs, "PersistentVolumeClaim", "dl-driftloop-adapters")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    for dep, read_only in ((inf, True), (ret, False)):
        vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
        assert vols["adapters"]["persistentVolumeClaim"]["claimName"] == "dl-driftloop-adapters"
        mount = next(m for m in container(dep)["volumeMounts"] if m["name"] == "adapters")
        assert mount["mountPath"] == "/adapters" and mount.get("readOnly", False) is read_only

    ports = {p["name"]: p for p in one(docs, "Service", "dl-driftloop-inference")["spec"]["ports"]}
    assert {n: (p["port"], p["targetPort"], p["appProtocol"]) for n, p in ports.items() if n in ("grpc", "http")} == {
        "grpc": (50051, "grpc", "grpc"), "http": (8000, "http", "http")}
    for name, port in (("inference", 9400), ("monitor", 9401), ("retrainer", 9402)):
        svc = one(docs, "Service", f"dl-driftloop-{name}")
        assert {p["name"]: p["port"] for p in svc["spec"]["ports"]}["metrics"] == port
        assert svc["spec"]["selector"]["app.kubernetes.io/component"] == name


def test_admin_token_is_generated_when_none_is_given(rendered):
    """Secure by default: with no token and no existingSecret the chart generates one (lookup keeps it
    across upgrades) and both inference and the retrainer read it from the chart's Secret."""
    docs = rendered["default"]
    secret = one(docs, "Secret", "dl-driftloop")
    token = base64.b64decode(secret["data"]["admin-token"]).decode()
    assert len(token) == 40 and token.isalnum() and set(secret["data"]) == {"admin-token"}
    for name, var in (("inference", "DRIFTLOOP_INFERENCE_ADMIN_TOKEN"),
                      ("retrainer", "DRIFTLOOP_RETRAINER_INFERENCE_ADMIN_TOKEN")):
        env = {e["name"]: e for e in container(one(docs, "Deployment", f"dl-driftloop-{name}"))["env"]}
        assert env[var]["valueFrom"]["secretKeyRef"] == {"name": "dl-driftloop", "key": "admin-token"}, name


def _ingress(docs: list[dict], name: str) -> dict[tuple[str, ...], dict]:
    """A NetworkPolicy's ingress rules by the ports each opens."""
    spec = one(docs, "NetworkPolicy", name)["spec"]
    assert spec["policyTypes"] == ["Ingress"]
    return {tuple(p["port"] for p in r["ports"]): r for r in spec["ingress"]}


def test_network_policies_keep_applications_off_admin(rendered):
    """On by default: inference's admin port only from the retrainer's pods, gRPC, HTTP and metrics
    open, monitor and retrainer reachable on metrics only; no Kafka policy unless its pods are named."""
    docs = rendered["default"]
    rules = _ingress(docs, "dl-driftloop-inference")
    assert set(rules) == {("grpc", "http"), ("admin",), ("metrics",)}  # the applications' ports: one rule
    rules = {ports[0]: r for ports, r in rules.items()}
    assert "from" not in rules["grpc"] and "from" not in rules["metrics"]
    assert rules["admin"]["from"] == [{"podSelector": {"matchLabels": {
        "app.kubernetes.io/name": "driftloop", "app.kubernetes.io/instance": "dl",
        "app.kubernetes.io/component": "retrainer"}}}]
    svc = one(docs, "Service", "dl-driftloop-inference")
    assert {p["name"]: p["port"] for p in svc["spec"]["ports"]}["admin"] == 50052
    for name in ("monitor", "retrainer"):
        spec = one(docs, "NetworkPolicy", f"dl-driftloop-{name}")["spec"]
        assert [r["ports"][0]["port"] for r in spec["ingress"]] == ["metrics"]
    assert not find(docs, "NetworkPolicy", "dl-driftloop-kafka-clients")
    strimzi = one(rendered["strimzi"], "NetworkPolicy", "dl-driftloop-kafka-clients")["spec"]
    assert strimzi["podSelector"]["matchLabels"]["strimzi.io/kind"] == "Kafka"
    assert strimzi["ingress"][0]["from"][0]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/instance": "dl", "app.kubernetes.io/name": "driftloop"}


def test_applications_reach_http_exactly_like_grpc(rendered):
    """networkPolicy.clientsFrom narrows gRPC and HTTP alike; admin stays the retrainer's."""
    rules = _ingress(rendered["everything-on"], "dl-driftloop-inference")
    apps = rules[("grpc", "http")]
    assert apps["from"] == [{"namespaceSelector": {"matchLabels": {"team": "apps"}}}]
    assert [p["protocol"] for p in apps["ports"]] == ["TCP", "TCP"]
    assert rules[("admin",)]["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "retrainer"


def test_http_off_opens_and_exposes_nothing(rendered):
    docs = rendered["no-http"]
    cm = one(docs, "ConfigMap", "dl-driftloop-inference")["data"]
    assert cm["DRIFTLOOP_INFERENCE_OPENAI_HTTP"] == "false" and "DRIFTLOOP_INFERENCE_HTTP_PORT" not in cm
    c = container(one(docs, "Deployment", "dl-driftloop-inference"))
    assert [p["name"] for p in c["ports"]] == ["grpc", "admin", "metrics"]
    svc = one(docs, "Service", "dl-driftloop-inference")
    assert [p["name"] for p in svc["spec"]["ports"]] == ["grpc", "admin", "metrics"]
    assert set(_ingress(docs, "dl-driftloop-inference")) == {("grpc",), ("admin",), ("metrics",)}


def test_insecure_admin_only_by_explicit_switch(rendered):
    docs = rendered["insecure-admin"]
    assert not find(docs, "Secret")
    cm = one(docs, "ConfigMap", "dl-driftloop-inference")["data"]
    assert cm["DRIFTLOOP_INFERENCE_ALLOW_UNAUTHENTICATED_ADMIN"] == "true"
    env = [e["name"] for e in container(one(docs, "Deployment", "dl-driftloop-inference"))["env"]]
    assert "DRIFTLOOP_INFERENCE_ADMIN_TOKEN" not in env


def test_production_gpu_release(rendered):
    docs = rendered["production-gpu"]
    inf = one(docs, "Deployment", "dl-driftloop-inference")
    assert "replicas" not in inf["spec"]  # the HPA owns it
    assert container(inf)["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert inf["spec"]["template"]["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    ret = one(docs, "Deployment", "dl-driftloop-retrainer")
    assert container(ret)["resources"]["limits"]["nvidia.com/gpu"] == 1
    cm = one(docs, "ConfigMap", "dl-driftloop-inference")["data"]
    assert cm["DRIFTLOOP_INFERENCE_DTYPE"] == "bfloat16" and cm["DRIFTLOOP_INFERENCE_ENFORCE_EAGER"] == "false"
    assert cm["DRIFTLOOP_INFERENCE_MAX_TOKENS_LIMIT"] == "512"
    assert cm["DRIFTLOOP_INFERENCE_SPOOL_MAX_BYTES"] == "3221225472"

    hpa = one(docs, "HorizontalPodAutoscaler", "dl-driftloop-inference")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": "dl-driftloop-inference"}
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "driftloop_inference_in_flight_requests"
    assert one(docs, "PodDisruptionBudget", "dl-driftloop-inference")

    # secrets come from existing Secrets: the chart creates none
    assert not find(docs, "Secret")
    env = {e["name"]: e for e in container(inf)["env"]}
    assert env["DRIFTLOOP_INFERENCE_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "driftloop-admin", "key": "admin-token"}
    assert env["DRIFTLOOP_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "driftloop-kafka", "key": "password"}
    kafka = one(docs, "ConfigMap", "dl-driftloop-kafka")["data"]
    assert kafka["DRIFTLOOP_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert kafka["DRIFTLOOP_KAFKA_SSL_CAFILE"] == "/etc/driftloop/kafka-ca/ca.crt"
    assert any(m["mountPath"] == "/etc/driftloop/kafka-ca" for m in container(inf)["volumeMounts"])

    # one ServiceMonitor per component, each selecting its component's Service by its metrics port
    monitors = find(docs, "ServiceMonitor")
    assert sorted(m["metadata"]["name"] for m in monitors) == [
        "dl-driftloop-inference", "dl-driftloop-monitor", "dl-driftloop-retrainer"]
    for sm in monitors:
        assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        svc = one(docs, "Service", sm["metadata"]["name"])
        assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
        assert sm["spec"]["endpoints"][0]["port"] in {p["name"] for p in svc["spec"]["ports"]}


def test_prometheus_rule_is_the_alerts_file(rendered):
    rule = one(rendered["production-gpu"], "PrometheusRule", "dl-driftloop")
    alerts = yaml.safe_load((REPO / "deploy" / "prometheus" / "alerts.yaml").read_text())
    assert rule["spec"] == alerts  # same runbook prefix in the example: byte-for-byte the same rules


def test_prometheus_rule_runbook_prefix(run):
    docs = render(run, "--set", "prometheusRule.enabled=true",
                  "--set", "prometheusRule.runbookBaseUrl=https://wiki.example.com/runbooks/")
    rules = [r for g in one(docs, "PrometheusRule", "dl-driftloop")["spec"]["groups"] for r in g["rules"]]
    assert rules and all(r["annotations"]["runbook_url"] == f"https://wiki.example.com/runbooks/{r['alert']}.md"
                         for r in rules)


def test_dashboards_configmaps_for_the_grafana_sidecar(rendered):
    docs = rendered["production-gpu"]
    maps = [cm for cm in find(docs, "ConfigMap") if cm["metadata"]["labels"].get("grafana_dashboard") == "1"]
    files = sorted((REPO / "deploy" / "grafana" / "dashboards").glob("*.json"))
    assert len(maps) == len(files) == 2
    for cm in maps:
        assert cm["metadata"]["annotations"] == {"grafana_folder": "driftloop"}
        ((key, text),) = cm["data"].items()
        assert json.loads(text) == json.loads((REPO / "deploy" / "grafana" / "dashboards" / key).read_text())


def test_strimzi_release(rendered):
    docs = rendered["strimzi"]
    kafka = one(docs, "ConfigMap", "dl-driftloop-kafka")["data"]
    assert kafka["DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS"] == "driftloop-kafka-kafka-bootstrap.kafka.svc:9093"
    assert kafka["DRIFTLOOP_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    mon = one(docs, "Deployment", "dl-driftloop-monitor")
    assert "initContainers" not in mon["spec"]["template"]["spec"]  # the Topic Operator owns the topics
    env = {e["name"]: e for e in container(mon)["env"]}
    assert env["DRIFTLOOP_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "driftloop", "key": "password"}
    vols = {v["name"]: v for v in mon["spec"]["template"]["spec"]["volumes"]}
    assert vols["kafka-ca"]["secret"]["secretName"] == "driftloop-kafka-cluster-ca-cert"


def test_strimzi_topics_match_the_project_topics():
    from driftloop.core.topics import ALL_TOPICS

    docs = [d for d in yaml.safe_load_all((EXAMPLES / "strimzi-kafka.yaml").read_text()) if d]
    topics = {d["spec"]["topicName"]: d["spec"] for d in docs if d["kind"] == "KafkaTopic"}
    assert set(topics) == {t.name for t in ALL_TOPICS}
    for t in ALL_TOPICS:
        assert topics[t.name]["partitions"] == t.partitions
        assert topics[t.name].get("config", {}) == t.config
    assert all(d["apiVersion"] == "kafka.strimzi.io/v1beta2" for d in docs)
    assert [d["kind"] for d in docs].count("KafkaUser") == 1


def test_inline_secrets_and_tls(rendered):
    docs = rendered["inline-secrets-tls"]
    secret = one(docs, "Secret", "dl-driftloop")
    assert {k: base64.b64decode(v).decode() for k, v in secret["data"].items()} == {
        "admin-token": "s3cret", "kafka-sasl-password": "p4ss"}
    tls = one(docs, "Secret", "dl-driftloop-tls")
    assert tls["type"] == "kubernetes.io/tls" and set(tls["data"]) == {"tls.crt", "tls.key"}
    inf = one(docs, "Deployment", "dl-driftloop-inference")
    c = container(inf)
    env = {e["name"]: e for e in c["env"]}
    assert env["DRIFTLOOP_INFERENCE_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "dl-driftloop", "key": "admin-token"}
    ret = one(docs, "Deployment", "dl-driftloop-retrainer")
    renv = {e["name"]: e for e in container(ret)["env"]}
    assert renv["DRIFTLOOP_RETRAINER_INFERENCE_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "admin-token"
    cm = one(docs, "ConfigMap", "dl-driftloop-inference")["data"]
    assert cm["DRIFTLOOP_INFERENCE_TLS_CERT_FILE"] == "/etc/driftloop/tls/tls.crt"
    # the HTTP listener serves the same certificate: its Service port says so
    http = next(p for p in one(docs, "Service", "dl-driftloop-inference")["spec"]["ports"] if p["name"] == "http")
    assert http["appProtocol"] == "https"
    # native gRPC probes cannot speak TLS: the image's health script checks over TLS instead
    probe = c["readinessProbe"]["exec"]["command"]
    assert probe[0] == "driftloop-grpc-health" and "--tls-ca" in probe
    assert probe[probe.index("--server-name") + 1] == "dl-driftloop-inference.driftloop.svc"
    # the retrainer dials inference over TLS, verifying it with the CA and the Service's name
    rcm = one(docs, "ConfigMap", "dl-driftloop-retrainer")["data"]
    assert rcm["DRIFTLOOP_RETRAINER_INFERENCE_TLS"] == "true"
    assert rcm["DRIFTLOOP_RETRAINER_INFERENCE_CA_FILE"] == "/etc/driftloop/tls/tls.crt"
    assert rcm["DRIFTLOOP_RETRAINER_INFERENCE_SERVER_NAME"] == "dl-driftloop-inference.driftloop.svc"
    rmount = next(m for m in container(ret)["volumeMounts"] if m["name"] == "tls")
    assert rmount == {"name": "tls", "mountPath": "/etc/driftloop/tls", "readOnly": True}
    rvols = {v["name"]: v for v in ret["spec"]["template"]["spec"]["volumes"]}
    assert rvols["tls"]["secret"]["secretName"] == "dl-driftloop-tls"
    # config and secret changes roll the pods
    annotations = inf["spec"]["template"]["metadata"]["annotations"]
    assert {"checksum/config", "checksum/secret"} <= set(annotations)


def test_everything_on(rendered):
    docs = rendered["everything-on"]
    hpa = one(docs, "HorizontalPodAutoscaler", "dl-driftloop-inference")
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    mon = one(docs, "Deployment", "dl-driftloop-monitor")
    assert mon["spec"]["replicas"] == 1 and mon["spec"]["strategy"]["type"] == "Recreate"
    assert not find(docs, "PersistentVolumeClaim", "dl-driftloop-adapters")
    kafka = one(docs, "ConfigMap", "dl-driftloop-kafka")["data"]
    assert kafka["DRIFTLOOP_KAFKA_SSL_CERTFILE"] == "/etc/driftloop/kafka-client/client.crt"
    assert len(find(docs, "ServiceMonitor")) == 3 and len(find(docs, "PrometheusRule")) == 1
    for name in ("inference", "retrainer"):  # the model is fetched before either starts
        (init,) = one(docs, "Deployment", f"dl-driftloop-{name}")["spec"]["template"]["spec"]["initContainers"]
        assert init["name"] == "fetch-model" and init["volumeMounts"] == [{"name": "model", "mountPath": "/models"}]


def test_monitor_only(rendered):
    docs = rendered["monitor-only"]
    assert [d["metadata"]["name"] for d in find(docs, "Deployment")] == ["dl-driftloop-monitor"]
    assert not find(docs, "PersistentVolumeClaim", "dl-driftloop-adapters")


# -- values.yaml documentation --------------------------------------------------------------------

def _schema_node(schema: dict, path: list[str]) -> dict | None:
    node = schema
    for key in path:
        props = node.get("properties")
        if props is None or key not in props:
            return None
        node = props[key]
    return node


def test_every_value_is_documented_and_typed():
    """Each key of values.yaml is in values.schema.json (with a description), and each leaf value
    (scalar, list, or free-form map) has a comment right above it."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    lines = (CHART / "values.yaml").read_text().splitlines()
    stack: list[tuple[int, str]] = []
    undocumented, untyped = [], []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped.startswith("- ") or ":" not in stripped:
            continue
        indent = len(line) - len(line.lstrip())
        key = stripped.split(":", 1)[0].strip().strip('"')
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent = _schema_node(schema, [k for _, k in stack])
        path = [k for _, k in stack] + [key]
        if parent is None or "properties" not in parent:
            continue  # inside a free-form map (resources, securityContext, ...): the map is documented
        stack.append((indent, key))
        node = _schema_node(schema, path)
        if node is None or not node.get("description"):
            untyped.append(".".join(path))
            continue
        if "properties" not in node and not lines[i - 1].strip().startswith("#"):
            undocumented.append(".".join(path))
    assert not untyped, f"values without a schema entry or description: {untyped}"
    assert not undocumented, f"values without a comment: {undocumented}"


def test_schema_has_no_value_missing_from_values_yaml():
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(node: dict, value, path: str) -> list[str]:
        missing = []
        for key, sub in node.get("properties", {}).items():
            if key == "global":
                continue
            if not isinstance(value, dict) or key not in value:
                missing.append(f"{path}{key}")
            else:
                missing += walk(sub, value[key], f"{path}{key}.")
        return missing

    assert not walk(schema, values, "")


def test_packaged_chart_carries_rules_and_dashboards(run, tmp_path):
    """files/alerts.yaml and files/dashboards are symlinks into deploy/: `helm package` must resolve
    them, so a chart installed from a repository renders the same rules and dashboards."""
    out = run("helm", "package", str(CHART), "-d", str(tmp_path))
    assert out.returncode == 0, out.stderr
    (archive,) = tmp_path.glob("driftloop-*.tgz")
    out = run("helm", "template", "dl", str(archive), "--set", "prometheusRule.enabled=true",
              "--set", "grafana.dashboards.enabled=true")
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    alerts = yaml.safe_load((REPO / "deploy" / "prometheus" / "alerts.yaml").read_text())
    assert one(docs, "PrometheusRule", "dl-driftloop")["spec"] == alerts
    assert len([cm for cm in find(docs, "ConfigMap") if "grafana_dashboard" in cm["metadata"]["labels"]]) == 2
