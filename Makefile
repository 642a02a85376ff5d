# tinytor build, test and release targets. See README.md.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
# CROSS_GCFLAGS=all=-l trades inlining (speed) for about 10% less flash.
CROSS_GCFLAGS ?=
BUILD    := CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)"
# FLASH_BUDGET is the most a stripped mipsle binary may weigh (8 MiB).
FLASH_BUDGET := 8388608
FUZZTIME ?= 10s

# name:GOOS/GOARCH:extra environment
TARGETS := \
	linux-armv5:linux/arm:GOARM=5 \
	linux-armv7:linux/arm:GOARM=7 \
	linux-arm64:linux/arm64: \
	linux-mips:linux/mips:GOMIPS=softfloat \
	linux-mipsle:linux/mipsle:GOMIPS=softfloat

.PHONY: all build run cross deps test test-integration test-pow test-cross check fmt-check vet fuzz clean

all: build

## build: the host binary in bin/
build:
	$(BUILD) -o bin/tinytor .

## run: build, then run with the torrc given in TORRC (zero-config when unset)
run: build
	./bin/tinytor $(if $(TORRC),-f $(TORRC))

## cross: five static router binaries in dist/, with their sizes
cross:
	@mkdir -p dist
	@for t in $(TARGETS); do \
		name=$${t%%:*}; rest=$${t#*:}; plat=$${rest%%:*}; extra=$${rest#*:}; \
		env GOOS=$${plat%/*} GOARCH=$${plat#*/} $$extra $(BUILD) $(if $(CROSS_GCFLAGS),-gcflags=$(CROSS_GCFLAGS)) -o dist/tinytor-$$name . || exit 1; \
	done
	@printf '%-28s %10s %8s\n' binary bytes MiB
	@for f in dist/tinytor-*; do \
		s=$$(stat -c %s $$f); printf '%-28s %10d %8.2f\n' $$f $$s $$(echo "$$s/1048576" | bc -l); \
	done
	@s=$$(stat -c %s dist/tinytor-linux-mipsle); if [ -z "$(CROSS_GCFLAGS)" ] && [ $$s -gt $(FLASH_BUDGET) ]; then \
		echo "dist/tinytor-linux-mipsle: $$s bytes, over the flash budget of $(FLASH_BUDGET) bytes"; exit 1; fi

## deps: install the Debian packages the tests need (only missing ones; as root)
deps:
	scripts/deps

## test: unit tests with the race detector (integration tests are skipped by -short)
test:
	$(GO) test -race -short -timeout 20m ./...

## test-integration: tests against a private C tor network (scripts/testnet)
test-integration: deps
	TINYTOR_REQUIRE_TESTNET=1 $(GO) test -count=1 -timeout 60m ./...

## test-pow: the onion-service proof-of-work test against a flooded C tor
## service (6-12 minutes; not part of check)
test-pow: deps
	TINYTOR_REQUIRE_TESTNET=1 TINYTOR_POW_TEST=1 $(GO) test -count=1 -timeout 60m -run 'TestOnionPoW(Client|Service)$$' -v ./scripts/integration/

## test-cross: unit tests under qemu-user for arm64 and big-endian mips
test-cross: deps
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) test -short -count=1 -timeout 30m -exec qemu-aarch64-static ./...
	GOOS=linux GOARCH=mips GOMIPS=softfloat CGO_ENABLED=0 $(GO) test -short -count=1 -timeout 30m -exec qemu-mips-static ./...

fmt-check:
	@bad=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$bad" ]; then echo "not gofmt-formatted:"; echo "$$bad"; exit 1; fi

vet:
	$(GO) vet ./...

## fuzz: every fuzz target for FUZZTIME each
fuzz:
	FUZZTIME=$(FUZZTIME) scripts/fuzz

## check: everything CI runs, after installing what the tests need (deps). No
## test skips for want of a tool: TINYTOR_REQUIRE_TESTNET=1 makes that a failure.
check: export TINYTOR_REQUIRE_TESTNET = 1
check: deps fmt-check vet build cross test test-integration test-cross

clean:
	rm -rf bin dist
