# syntax=docker/dockerfile:1
#
# rotary's container image: a static Go binary on distroless, run as the
# distroless "nonroot" user (65532). Needs BuildKit (cache mounts):
#
#   docker build -t rotary .
#
# Configuration is a mounted file (/etc/rotary/config.yaml, see
# deploy/configmap.yaml); credentials come from the environment (Secrets);
# state is the bbolt file at /var/lib/rotary/rotary.db (the config's
# state_path), on a volume. Nothing is baked into the image but the binary.
#
# For releases, pin both base images by digest (FROM image:tag@sha256:...) so
# a rebuild of the same commit gives the same image.

# MAIN_PKG is the package holding rotary's main, relative to the module root.
ARG MAIN_PKG=.

FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG MAIN_PKG
# Set by BuildKit from --platform; the build cross-compiles (pure Go, no cgo)
# instead of emulating the target architecture.
ARG TARGETOS
ARG TARGETARCH
WORKDIR /src

# Modules first, in their own layer and cache mount, so a source change does
# not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .
# CGO_ENABLED=0: a static binary, which the distroless static image (no libc)
# needs. -trimpath: no build-machine paths in the binary. -s -w: no symbol
# table or DWARF (smaller; stack traces still carry function names).
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w" -o /rootfs/rotary "$MAIN_PKG"

# The state directory, made here because the final image has no shell. Owned
# by nonroot and private to it: the bbolt file holds the approval records and
# the rotation journal. COPY --from keeps this ownership for everything below
# the copied directory, which is why the whole tree is copied, not the leaf.
RUN install -d -m 0700 -o 65532 -g 65532 /rootfs/var/lib/rotary

FROM gcr.io/distroless/static-debian12:nonroot
# /rotary (root-owned, not writable by the process) and /var/lib/rotary.
COPY --from=build /rootfs/ /
# Numeric, so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 65532:65532
# Declared a volume so that plain `docker run` keeps the state outside the
# container layer; Kubernetes mounts a PersistentVolumeClaim here instead.
VOLUME /var/lib/rotary
WORKDIR /var/lib/rotary
# HTTP: /slack/commands, /slack/interactions, /healthz, /readyz, /metrics.
EXPOSE 8080
ENTRYPOINT ["/rotary"]
CMD ["serve", "--config", "/etc/rotary/config.yaml"]
