# The two commands a new user needs are `make run-example` and `make test`.
CARGO ?= cargo
EXAMPLE ?= examples/phase0/project.json

.PHONY: all build install run-example test test-passes lint fmt bench clean

all: build

build:
	$(CARGO) build --release --locked

install:
	$(CARGO) install --path . --locked

# A debug build: the example is tiny, and it shares the build `make test` makes.
run-example:
	$(CARGO) run --locked --quiet -- run --project $(EXAMPLE)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets --features failpoints -- -D warnings

# Lints first, then every unit and integration test. `failpoints` compiles
# the crash tests' fault injection into this test build only (src/failpoint.rs).
# tests/with-postgres gives the whole run one throwaway PostgreSQL server
# (or says in one line that the PostgreSQL tests are skipped).
test: lint
	tests/with-postgres $(MAKE) --no-print-directory test-passes

# The integration tests run twice: against SQLite, then (when a PostgreSQL
# server is there) with every workspace's registry a fresh PostgreSQL
# database (tests/common/mod.rs: postgres_pass). Called by `test`.
test-passes:
	$(CARGO) test --locked --all-targets --features failpoints
	@if [ -n "$$ORCHESTRATOR_TEST_PG" ]; then \
	  echo "--- the integration tests again, against PostgreSQL ---"; \
	  ORCHESTRATOR_TEST_BACKEND=postgres $(CARGO) test --locked --features failpoints --test '*'; \
	fi

# The benchmark suite (benches/suite): one Markdown table of medians beside
# floors measured in the same run; results and analysis go in BENCHMARKS.md.
# `make bench FILTER=verify` runs one group.
bench:
	$(CARGO) bench --locked --bench suite -- $(FILTER)

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
	rm -rf artifacts
