GO        ?= go
TESTFLAGS ?= -race -count=1
FUZZTIME  ?= 20s
VERSION   ?= 0.1.0-dev
COMMIT    := $(shell git rev-parse --short HEAD 2>/dev/null)
LDFLAGS   := -X main.version=$(VERSION) -X main.gitCommit=$(COMMIT) -X main.buildTime=$(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LINT      := $(GO) tool -modfile=tools/go.mod golangci-lint
# Where `make run` keeps its state; override for a private instance.
RUNFLAGS  ?=

.DEFAULT_GOAL := help
.PHONY: help build run test unit integration bench lint vet fmt fuzz conformance interop tidy demo systemd-verify

help:        ## list targets
	@awk 'BEGIN{FS=":.*## "} /^[a-zA-Z_-]+:.*## /{printf "  %-12s %s\n",$$1,$$2}' $(MAKEFILE_LIST)

build:       ## compile everything and bin/pluginsd
	$(GO) build ./...
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/pluginsd ./cmd/pluginsd

run: build   ## run pluginsd on unix:///run/pluginsd/pluginsd.sock (as root)
	./bin/pluginsd $(RUNFLAGS)

test: unit integration ## every test: unit (race) and integration (real server, docker CLI, SDK clients)

unit:        ## unit tests of the main module, race detector on
	$(GO) test $(TESTFLAGS) ./...

integration: ## black-box tests in integration/ (own go.mod)
	cd integration && $(GO) test $(TESTFLAGS) -timeout 15m ./...

bench:       ## Go benchmarks: create MB/s; list/inspect requests per second with 100 plugins, resident memory
	$(GO) test -run '^$$' -bench . -benchtime 5x -count 1 ./manager/
	cd integration && $(GO) test -run '^$$' -bench . -benchtime 3s -count 1 ./...

vet:         ## go vet both modules
	$(GO) vet ./...
	cd integration && $(GO) vet ./...

lint: vet    ## golangci-lint (tools/go.mod) over both modules, gofmt check
	@# Not "tee /dev/stderr": tee opens it with O_TRUNC, which empties a log file that stderr is redirected to.
	@out="$$(gofmt -l .)"; test -z "$$out" || { echo "$$out"; echo "gofmt needed"; exit 1; }
	$(LINT) run ./...
	cd integration && $(GO) tool -modfile=../tools/go.mod golangci-lint run ./...
	$(MAKE) --no-print-directory systemd-verify

systemd-verify: build ## systemd-analyze verify the unit in contrib/, warnings count as errors (bin/pluginsd stands in for /usr/local/bin/pluginsd)
	@command -v systemd-analyze >/dev/null || { echo "systemd-analyze not found: apt-get install systemd"; exit 1; }
	@d=$$(mktemp -d) && trap 'rm -rf "$$d"' EXIT && \
	  sed 's#/usr/local/bin/pluginsd#$(CURDIR)/bin/pluginsd#' contrib/systemd/pluginsd.service >"$$d/pluginsd.service" && \
	  out=$$(systemd-analyze verify "$$d/pluginsd.service" 2>&1) && test -z "$$out" || \
	  { echo "$$out"; echo "systemd-verify: contrib/systemd/pluginsd.service has errors or warnings"; exit 1; }; \
	  echo "systemd-verify: contrib/systemd/pluginsd.service OK"

fmt:         ## gofmt both modules
	gofmt -w .

fuzz:        ## run each fuzz target for FUZZTIME
	$(GO) test -run '^$$' -fuzz '^FuzzSplit$$' -fuzztime $(FUZZTIME) ./manager/rootfs
	$(GO) test -run '^$$' -fuzz '^FuzzParseFilters$$' -fuzztime $(FUZZTIME) ./compat
	$(GO) test -run '^$$' -fuzz '^FuzzSplitPath$$' -fuzztime $(FUZZTIME) ./compat
	$(GO) test -run '^$$' -fuzz '^FuzzResolve$$' -fuzztime $(FUZZTIME) ./manager/pluginstore
	$(GO) test -run '^$$' -fuzz '^FuzzParseSettables$$' -fuzztime $(FUZZTIME) ./manager

conformance: build ## ../shared/conformance scenarios 01-07 against a fresh pluginsd and registry
	./scripts/conformance.sh 01 02 03 04 05 06 07

interop: build ## plugins both ways between pluginsd and the reference dockerd (../shared/conformance/ref-up.sh)
	./scripts/interop.sh

demo:        ## as root: build, then create, push, install, set, enable, use, upgrade, rm the example volume plugin with the docker CLI
	./scripts/demo.sh

tidy:        ## fail if go.mod files need tidying
	$(GO) mod tidy -diff
	cd integration && $(GO) mod tidy -diff
