# Tributary: build, run and test. `make help` lists the targets.

GO        ?= go
BIN       := bin/tributary
PKGS      := ./...
QUICKSTART := examples/quickstart/tributary.yaml
TEST_TIMEOUT ?= 20m
FUZZTIME  ?= 20s

.PHONY: help build run demo demo-down test test-unit test-race test-kafka-compat services services-down vet schema bench fuzz clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

build: ## build bin/tributary
	$(GO) build -o $(BIN) ./cmd/tributary

run: build ## run the quickstart (webhook -> embedded stream); nothing else needed
	$(BIN) run -c $(QUICKSTART)

demo: ## the retail system wrapped end to end (examples/retail): services, simulators, one sidecar; left running
	examples/retail/demo.sh up

demo-down: ## stop the retail demo's simulators and sidecar
	examples/retail/demo.sh down

services: ## install and start Kafka, PostgreSQL and MariaDB on 127.0.0.1
	scripts/services up

services-down: ## stop the services
	scripts/services down

vet: ## go vet
	$(GO) vet $(PKGS)

test: services vet test-kafka-compat ## every test, real services required, with the race detector
	eval "$$(scripts/services env)" && \
	  TRIBUTARY_REQUIRE_SERVICES=1 $(GO) test -race -timeout $(TEST_TIMEOUT) $(PKGS)
	$(GO) run ./cmd/tributary rules test -c examples/quickstart/tributary.yaml examples/quickstart/tests/rules.yaml && $(GO) run ./examples/custom-connector/cmd/acme-tributary rules test -c examples/custom-connector/tributary.yaml examples/custom-connector/tests/rules.yaml && $(GO) run ./cmd/tributary rules test -c examples/retail/tributary.yaml examples/retail/tests/rules.yaml

test-kafka-compat: ## the Kafka stream's integration tests on Kafka 3.9.2 too: a second broker on ports 19092-19096, stopped after
	export TRIBUTARY_KAFKA_VERSION=3.9.2 TRIBUTARY_SERVICES_KAFKA_NAME=kafka-3.9 TRIBUTARY_SERVICES_KAFKA_PORT=19092 && \
	  scripts/services up kafka && trap 'scripts/services down kafka' EXIT && \
	  eval "$$(scripts/services env kafka)" && \
	  TRIBUTARY_REQUIRE_SERVICES=1 $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./connectors/kafka/...

test-unit: ## tests that need no service (service tests skip, naming `make test`)
	$(GO) test -timeout $(TEST_TIMEOUT) $(PKGS)

schema: ## regenerate config/tributary.schema.json from the registry
	$(GO) run ./cmd/tributary schema > config/tributary.schema.json

bench: services build ## every benchmark; figures go in the README's performance section
	eval "$$(scripts/services env)" && export TRIBUTARY_REQUIRE_SERVICES=1 && set -e && \
	  $(GO) test -run '^$$' -bench 'Apply10Fields$$' -cpu 1 -count 3 ./core/rules && \
	  $(GO) test -run '^$$' -bench . -benchtime 300000x ./core/runtime && \
	  $(GO) test -run '^$$' -bench 'Publish1KB|Subscribe1KB' -benchtime 100000x ./connectors/embedded && \
	  $(GO) test -run '^$$' -bench 'BenchmarkPublish1KB$$' -benchtime 300000x ./connectors/kafka && \
	  $(GO) test -run '^$$' -bench 'Handler' -benchtime 50000x ./adapters/webhook && \
	  $(GO) test -run '^$$' -bench 'Stream|Recvlogical|Steady5k|SnapshotParallel' -benchtime 1x ./connectors/postgres && \
	  $(GO) test -run '^$$' -bench 'Cursor' -benchtime 5x -count 8 ./connectors/sql && \
	  $(GO) test -run '^$$' -bench 'SnapshotDiff1M' -benchtime 1x ./connectors/sql && \
	  $(GO) test -run '^$$' -bench . -benchtime 1x ./connectors/rest && \
	  $(GO) test -run '^$$' -bench . -benchtime 200000x ./connectors/plugin && \
	  $(GO) test -run '^$$' -bench 'SinkRuntime' -benchtime 100000x ./connectors/http && \
	  $(GO) test -run '^$$' -bench 'SinkLatency2k' -benchtime 1x ./connectors/http && \
	  $(GO) test -run '^$$' -bench 'SinkRuntime' -benchtime 200000x ./connectors/audit && \
	  bench/sqlsink.sh && \
	  bench/mysql.sh && \
	  bench/webhook.sh && \
	  bench/sink.sh

fuzz: ## run every fuzz target for FUZZTIME each
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
	  fs=$$($(GO) test -list '^Fuzz' $$pkg) || { echo "$$fs"; exit 1; }; \
	  for f in $$(echo "$$fs" | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; done

clean: ## remove build output (not the services' state)
	rm -rf bin
