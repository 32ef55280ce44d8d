# furrow — common tasks. `make test` is what CI runs (.ci/run).
GO ?= go

.PHONY: run test build bench fuzz loadtest golden

run:
	$(GO) run ./cmd/furrow run

# Every test, with the race detector: unit, golden, fuzz seed corpora and
# end to end (the built binary driven by real Snowplow trackers). Installs
# the Node.js tracker (test/e2e/node/package-lock.json) first if it is
# missing; without npm, TestNodeTracker fails and says why. Likewise the
# Python Thrift producer's virtualenv (test/e2e/python/requirements.txt).
NODE_TRACKER = test/e2e/node/node_modules/@snowplow/node-tracker
PY_VENV = test/e2e/python/.venv
test:
	@if [ ! -d $(NODE_TRACKER) ]; then \
	  if command -v npm >/dev/null; then \
	    echo "cd test/e2e/node && npm ci"; (cd test/e2e/node && npm ci --no-audit --no-fund); \
	  else echo "npm not found: TestNodeTracker will fail (.ci/run installs node and npm)" >&2; fi; \
	fi
	@if [ ! -x $(PY_VENV)/bin/python ]; then \
	  echo "python3 -m venv $(PY_VENV) && pip install -r test/e2e/python/requirements.txt"; \
	  python3 -m venv $(PY_VENV) && $(PY_VENV)/bin/pip install -q -r test/e2e/python/requirements.txt; \
	fi
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

build:
	CGO_ENABLED=1 $(GO) build -o bin/furrow ./cmd/furrow

bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./internal/...

# Runs each fuzz target for FUZZTIME (default 30s).
FUZZTIME ?= 30s
FUZZ_TARGETS = payload:FuzzUnmarshal jsonx:FuzzDecode jsonx:FuzzQuote event:FuzzSplit \
	analytics:FuzzAppendEventJSON iglu:FuzzParseSchemaKey iglu:FuzzParseSelfDescribing \
	enrich:FuzzParseQuery enrich:FuzzProcess enrich:FuzzExplodeURI wal:FuzzReadDamaged \
	pseudo:FuzzEntity pseudo:FuzzParsePath pseudo:FuzzBadRow enrich/step/pii:FuzzParsePath config:FuzzExpandString \
	loader:FuzzDecodeFrame stream/kafka:FuzzTruncateUTF8
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; fn=$${t##*:}; echo "== $$pkg $$fn"; \
	  $(GO) test -run='^$$' -fuzz="^$$fn\$$" -fuzztime=$(FUZZTIME) ./internal/$$pkg; \
	done

loadtest:
	bench/loadtest.sh

# Rewrites the enricher's golden files after an intended change.
golden:
	$(GO) test ./internal/enrich -run TestGolden -update
