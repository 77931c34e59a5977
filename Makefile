# mitosis — every target runs on a fresh Debian machine as root.
# `make help` lists them.

GO        ?= go
BIN       := bin/mitosis
BUILD_DIR := build
FUZZTIME  ?= 30s
BENCH     ?= .
COUNT       ?= 6
CHAOS_COUNT ?= 10
CHAOS_ROUNDS ?= 40
CHAOS_RANDOM ?= 200
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)

.DEFAULT_GOAL := help
.PHONY: help build run report test test-race acceptance bench chaos lint fuzz check-core deps clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-11s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

deps: ## Install what the build and the tests need (Debian, as root)
	@scripts/deps.sh

build: deps ## Build bin/mitosis
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/mitosis

run: build ## The main job: an agent on a simulated cluster, with its dashboard (Ctrl-C stops it)
	$(BIN) agent --simulate --log-level warn

report: build ## Simulate the default policy on a synthetic day, live clones against cold boots, and write the report
	$(BIN) simulate --synthetic diurnal --duration 24h --seed 1 --mode both --out out/run
	@echo "report: out/run/report.html"

test: deps check-core ## The whole suite: core boundary, vet, every Go and Rego test; fails if it leaves files in /tmp or processes running
	$(GO) vet ./...
	scripts/leftovers.sh $(GO) test -count=1 ./...

test-race: deps ## The suite under the race detector
	$(GO) test -race -count=1 ./...

acceptance: deps ## The WorldCup98 acceptance runs (also in test), with their summaries printed
	$(GO) test -count=1 -run WorldCup -v ./sim/

bench: deps ## Benchmarks; compare runs with: make bench > new.txt; go tool benchstat old.txt new.txt
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -count $(COUNT) ./plan/ ./policy/ ./sim/ ./autoscaler/ ./hypervisor/vsphere/ ./hypervisor/libvirt/ ./metrics/prometheus/ ./raftstore/

lint: deps ## go vet, staticcheck, and the Rego format and strict checks
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
	$(GO) run ./cmd/mitosis policy check policies

chaos: deps ## The leader-loss, partition and failover tests, CHAOS_COUNT times over, and CHAOS_ROUNDS×12 + CHAOS_RANDOM real agents killed mid-operation (hundreds of trials)
	$(GO) test -count=$(CHAOS_COUNT) -run 'LeaderLossAtEveryStep|PartitionedLeader|SagasNeverStrandOrOrphan' ./autoscaler/
	$(GO) test -count=$(CHAOS_COUNT) -run 'ThreeAgentsFailOver' ./test/
	CHAOS_ROUNDS=$(CHAOS_ROUNDS) CHAOS_RANDOM=$(CHAOS_RANDOM) $(GO) test -count=1 -timeout 3h -v -run 'ChaosKillTheLeaderAtEveryStep' ./test/

fuzz: deps ## Run every fuzz target for FUZZTIME each (seeds live in testdata/fuzz)
	@scripts/fuzz.sh $(FUZZTIME)

check-core: ## Fail if the plan core imports anything but the standard library, or does I/O or reads the clock
	@scripts/check-core.sh

clean: ## Remove build output
	rm -rf bin out $(BUILD_DIR)
