# Builds doorman.
#
#   make build     ./doorman for this machine
#   make release   static binaries for the usual home-server and router CPUs
#                  in dist/, with dist/SHA256SUMS
#   make test      the whole test suite (./test.sh)
#   make clean
#
# Every binary is static (CGO_ENABLED=0), built with -trimpath, stripped
# (-s -w), and knows its version and commit (`doorman version`). Override
# them with `make release VERSION=v1.2.3`.

GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
DIST    ?= dist

PKG     := ./cmd/doorman
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
GOBUILD := CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=false -ldflags '$(LDFLAGS)'

# name:GOOS:GOARCH:extra environment. armv7 is the Raspberry Pi 2 and later
# with a 32-bit OS; mipsle with soft float is what most OpenWrt routers run
# (ramips, e.g. MT7621), which have no FPU.
PLATFORMS := \
	linux-amd64:linux:amd64: \
	linux-arm64:linux:arm64: \
	linux-armv7:linux:arm:GOARM=7 \
	linux-mipsle:linux:mipsle:GOMIPS=softfloat

.PHONY: all build release test clean

all: build

build:
	$(GOBUILD) -o doorman $(PKG)

release:
	@mkdir -p $(DIST)
	@set -e; for p in $(PLATFORMS); do \
		name=$${p%%:*}; rest=$${p#*:}; \
		goos=$${rest%%:*}; rest=$${rest#*:}; \
		goarch=$${rest%%:*}; extra=$${rest#*:}; \
		echo "building $(DIST)/doorman-$$name"; \
		env GOOS=$$goos GOARCH=$$goarch $$extra $(GOBUILD) -o $(DIST)/doorman-$$name $(PKG); \
	done
	@cd $(DIST) && sha256sum doorman-linux-* > SHA256SUMS
	@ls -l $(DIST)

test:
	./test.sh

clean:
	rm -rf doorman $(DIST)
