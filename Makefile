# portmirror: `make run` starts the daemon on its defaults, `make test` runs every test.

GO          ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
BIN         := bin
FUZZTIME    ?= 30s

.PHONY: run test build lint bench demo package fuzz clean web-vendor

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
##        BENCH_QUICK=1 runs every part at a tenth of its size; ARGS="-only bulk,daemon,status,storm,tls" picks parts
bench:
	$(GO) run ./cmd/portmirror-bench $(ARGS)

## demo: start portmirrord on a temporary data dir and free ports, run a small simulated fleet against it
##       (cmd/portmirror-sim: 3 hosts, 2 sessions), show the mirrored copies and the summary, stop the daemon;
##       ARGS go to portmirror-sim, e.g. make demo ARGS="--hosts 5 --sessions 6 --frames 500"
demo:
	@GO="$(GO)" sh cmd/portmirror-sim/demo.sh $(ARGS)

## fuzz: every fuzz target (OpenFlow decoders, the GraphQL request path, the config parser) for FUZZTIME each
##       (default 30s); the corpus is kept in each package's testdata/fuzz
fuzz:
	@GO="$(GO)" FUZZTIME="$(FUZZTIME)" sh test/fuzz.sh

## package: the Debian package dist/portmirror_<version>_<arch>.deb (dpkg-deb; layout in packaging/README.md);
##          VERSION=1.2.3 names the version (default 0.0~git<date>.<commit>)
package:
	@GO="$(GO)" sh packaging/build-deb.sh $(VERSION)

## web-vendor: refresh the console's front-end libraries (Preact, htm) in web/static/vendor and axe-core for the
##             browser tests in test/console/testdata from npm, at the versions of web/package-lock.json; the
##             files are committed, so run, test and build never need npm
web-vendor:
	cd web && npm ci --ignore-scripts --no-audit --no-fund
	mkdir -p web/static/vendor test/console/testdata
	for f in preact/dist/preact.module.js preact/hooks/dist/hooks.module.js htm/dist/htm.module.js; do \
		sed '/^\/\/# sourceMappingURL=/d' web/node_modules/$$f > web/static/vendor/$$(basename $$f); done
	cp web/node_modules/preact/LICENSE web/static/vendor/LICENSE.preact
	cp web/node_modules/htm/LICENSE web/static/vendor/LICENSE.htm
	cp web/node_modules/axe-core/axe.min.js test/console/testdata/axe.min.js
	cp web/node_modules/axe-core/LICENSE test/console/testdata/LICENSE.axe-core
	rm -rf web/node_modules

clean:
	rm -rf $(BIN) dist
