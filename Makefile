# portmirror: `make run` starts the daemon on its defaults, `make test` runs every test.

GO          ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
BIN         := bin

.PHONY: run test build lint bench demo clean

## run: start portmirrord on its defaults (data in ./data, API and GraphiQL on http://127.0.0.1:8080/graphql);
##      pass flags with ARGS, e.g. make run ARGS="--config portmirrord.yaml"
run:
	$(GO) run ./cmd/portmirrord $(ARGS)

## test: every test of the module, with the race detector
test:
	$(GO) test -race -count=1 -timeout 9m ./...

## build: the binaries into ./bin
build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/...

## lint: gofmt, go vet and staticcheck must all be clean
lint:
	@unformatted="$$(gofmt -l .)"; if [ -n "$$unformatted" ]; then echo "gofmt -l: not formatted:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

## bench: measure against OVS's own limits and os-ken; writes BENCHMARKS.md and bench/results.json (about 5 min);
##        BENCH_QUICK=1 runs every part at a tenth of its size; ARGS="-only bulk,daemon,status,storm,cluster" picks parts (the others keep their figures)
bench:
	$(GO) run ./cmd/portmirror-bench $(ARGS)

## demo: start portmirrord on a temporary data dir and free ports, run a small simulated fleet against it
##       (cmd/portmirror-sim: 3 hosts, 2 sessions), show the mirrored copies and the summary, stop the daemon;
##       ARGS go to portmirror-sim, e.g. make demo ARGS="--hosts 5 --sessions 6 --frames 500"
demo:
	@GO="$(GO)" sh cmd/portmirror-sim/demo.sh $(ARGS)

clean:
	rm -rf $(BIN)
