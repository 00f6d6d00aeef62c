# ssid-anchor: see README.md
GO ?= go
BIN := bin/ssid-anchor
IPFS := bin/ipfs

.PHONY: build run test bench soak fuzz ipfs clean

# The build names the commit it came from (ssid-anchor version, status,
# /metrics, release manifests). go build stamps vcs.* itself only where
# .git is a directory: in a linked git worktree or a submodule it stamps
# nothing, or an enclosing repository's commit (golang/go#58218). So git,
# which knows worktrees, is asked here and the linker stamps its answer;
# Go's own stamp stays on where it finds the right repository (go version
# -m shows it) and is turned off where it would not.
BUILDINFO := github.com/ssid/ssid-anchor/cmd/ssid-anchor/internal/buildinfo
GIT_COMMIT := $(shell git rev-parse HEAD 2>/dev/null)
GIT_TIME := $(shell TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ HEAD 2>/dev/null)
GIT_MODIFIED := $(if $(shell git status --porcelain 2>/dev/null | head -c1),true,false)
GO_FINDS_GIT := $(shell test -d "$$(git rev-parse --show-toplevel 2>/dev/null)/.git" && echo yes)
BUILD_FLAGS := -buildvcs=$(if $(GIT_COMMIT),$(if $(GO_FINDS_GIT),true,false),auto) \
	-ldflags "-X $(BUILDINFO).linkCommit=$(GIT_COMMIT) -X $(BUILDINFO).linkTime=$(GIT_TIME) -X $(BUILDINFO).linkModified=$(GIT_MODIFIED)"

# noplugin: kubo's loader of external plugin .so files (which ssid-anchor
# never loads) links Go's plugin package, which makes the linker export
# every symbol dynamically and keep every method: a 116 MB binary instead of
# 87 MB, and 9 MB more of it resident in every process (README, Performance).
build:
	$(GO) build -tags noplugin $(BUILD_FLAGS) -o $(BIN) ./cmd/ssid-anchor

# The stock kubo CLI, built from this module graph (go.mod tool directive);
# tests and benchmarks compare against it.
ipfs:
	$(GO) build -o $(IPFS) github.com/ipfs/kubo/cmd/ipfs

# The main job on an embedded default: an example governance tree, a fresh
# air-gapped repo, anchor, print the records.
run: build
	./scripts/demo.sh

test: build ipfs
	SSID_ANCHOR_BIN=$(CURDIR)/$(BIN) SSID_IPFS_BIN=$(CURDIR)/$(IPFS) $(GO) test -count=1 -timeout 40m ./...

# BENCH_FLAGS go to the anchoring benchmark (go run ./scripts/bench -h).
bench: build ipfs
	./scripts/bench.sh $(BENCH_FLAGS)

# The daemon soak (issue 22): the daemon over the benchmark's anchored tree,
# /metrics, /status and the console scraped every 5 s for 10 minutes, its
# memory read once a minute (go run ./scripts/bench -h: -soak, -scrape).
soak: build ipfs
	go run ./scripts/bench -bin bin/ssid-anchor -ipfs bin/ipfs -only soak $(BENCH_FLAGS)

fuzz:
	$(GO) test ./anchor/tree -run '^$$' -fuzz FuzzScanEvents -fuzztime 30s
	$(GO) test ./anchor/tree -run '^$$' -fuzz FuzzValidJSON -fuzztime 30s
	$(GO) test ./anchor/tree -run '^$$' -fuzz FuzzParseExceptions -fuzztime 30s
	$(GO) test ./anchor -run '^$$' -fuzz FuzzParseManifest -fuzztime 30s
	$(GO) test ./anchor -run '^$$' -fuzz FuzzCheckSignature -fuzztime 30s
	$(GO) test ./telemetry -run '^$$' -fuzz FuzzReadCSV -fuzztime 30s
	$(GO) test ./telemetry -run '^$$' -fuzz FuzzParseConfig -fuzztime 30s
	$(GO) test ./anchor/storacha -run '^$$' -fuzz FuzzDecodeReceipts -fuzztime 30s
	$(GO) test ./anchor/pinning -run '^$$' -fuzz FuzzQueueLoad -fuzztime 30s
	$(GO) test ./cmd/ssid-anchor/internal/control -run '^$$' -fuzz FuzzReadFrame -fuzztime 30s

clean:
	rm -rf bin demo bench-out
