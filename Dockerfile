# doorman in a container: a static binary on distroless, as a non-root user,
# with its state in a volume.
#
#   docker build -t doorman .
#   docker buildx build --platform linux/arm64,linux/arm/v7 -t doorman .
#
# Run it with the host's network (SSDP multicast and the router's UPnP events
# need the LAN): see deploy/docker-compose.yml. The bot token comes from an
# env file or a secret at run time, never from the image.

# The Go version is go.mod's `go` line (a test keeps them equal). The builder
# runs on the build machine and cross-compiles for the target.
FROM --platform=$BUILDPLATFORM golang:1.26.8-bookworm AS builder

ARG TARGETOS=linux
ARG TARGETARCH
ARG TARGETVARIANT
ARG VERSION=dev
ARG COMMIT=

WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .

# Static (no cgo), reproducible paths, stripped, stamped with the version.
# TARGETVARIANT is v7 for linux/arm/v7, which becomes GOARM=7.
RUN if [ "$TARGETARCH" = arm ]; then export GOARM="${TARGETVARIANT#v}"; fi \
	&& CGO_ENABLED=0 GOOS="$TARGETOS" GOARCH="$TARGETARCH" \
	go build -trimpath -buildvcs=false \
		-ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
		-o /out/doorman ./cmd/doorman \
	&& mkdir -p /out/state

# distroless/static: CA certificates (for api.telegram.org), /etc/passwd with
# the nonroot user (65532), tzdata, and nothing else: no shell.
FROM gcr.io/distroless/static-debian12:nonroot

COPY --from=builder /out/doorman /usr/local/bin/doorman
# An empty state directory owned by nonroot, so that a new named volume
# mounted there is writable by doorman.
COPY --from=builder --chown=65532:65532 /out/state /var/lib/doorman

# The state file lives in the volume. STATE_DIRECTORY keeps it there even
# when an env file sets DOORMAN_DB to nothing. The HEALTHCHECK asks doorman's
# /healthz at DOORMAN_METRICS_ADDR, on loopback only unless an env file
# widens it.
ENV DOORMAN_DB=/var/lib/doorman/doorman.db \
	STATE_DIRECTORY=/var/lib/doorman \
	DOORMAN_METRICS_ADDR=127.0.0.1:9177
VOLUME ["/var/lib/doorman"]
USER 65532:65532

# `doorman healthcheck` exits 0 when the running doorman is healthy (the
# router read and Telegram answering recently), 1 when it is not, and says
# why.
HEALTHCHECK --interval=1m --timeout=10s --start-period=30s --retries=3 \
	CMD ["/usr/local/bin/doorman", "healthcheck"]

ENTRYPOINT ["/usr/local/bin/doorman"]
CMD ["run"]
