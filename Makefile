# ssid-anchor: see README.md
GO ?= go
BIN := bin/ssid-anchor
IPFS := bin/ipfs

.PHONY: build run test bench soak fuzz ipfs clean

# noplugin: kubo's loader of external plugin .so files (which ssid-anchor
# never loads) links Go's plugin package, which makes the linker export
# every symbol dynamically and keep every method: a 116 MB binary instead of
# 87 MB, and 9 MB more of it resident in every process (README, Performance).
build:
	$(GO) build -tags noplugin -o $(BIN) ./cmd/ssid-anchor

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
	$(GO) test ./cmd/ssid-anchor -run '^$$' -fuzz FuzzReadFrame -fuzztime 30s

clean:
	rm -rf bin demo bench-out
