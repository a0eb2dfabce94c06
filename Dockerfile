# syntax=docker/dockerfile:1
# handoff container image: one binary, every service role (`handoff ingest|router|sla|notifier|all`).
#   docker build -t handoff:dev .
#   docker run --rm handoff:dev rules check /etc/handoff/rules.toml
# Checked by `make check-deploy` (hadolint).

ARG RUST_VERSION=1.95

# The full (not slim) Rust image: librdkafka is built from source by rdkafka-sys with its
# configure + make (C and C++), and this image already has make, g++, perl and pkg-config,
# so the build stage installs nothing (no unpinned apt packages).
FROM rust:${RUST_VERSION}-bookworm AS build
# zlib linked statically: the runtime image has no libz. OpenSSL (Kafka TLS, and the
# libcurl that fetches OAUTHBEARER tokens) is linked dynamically against bookworm's libssl3
# (libssl-dev is in this image): the runtime image ships the same libssl3 and the CA
# bundle (/etc/ssl/certs, found through `ssl.ca.location=probe`), and takes Debian's
# security updates of OpenSSL with a rebuild of the base instead of a rebuild of handoff.
# libcurl4-openssl-dev (also in this image) only lets librdkafka's configure turn OIDC on;
# the binary links curl-sys's own libcurl statically, so the runtime needs no libcurl.
ENV LIBZ_SYS_STATIC=1 \
    CARGO_TERM_COLOR=never
WORKDIR /src
COPY . .
# Cache mounts keep the registry and the dependency builds between image builds; the
# binary is copied out of the cached target dir because a cache mount is not part of the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin handoff \
 && cp target/release/handoff /usr/local/bin/handoff

# glibc, libgcc, libssl3 and CA certificates; no shell, no package manager. Same Debian release as
# the build stage, so the binary finds the glibc it was linked against.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/handoff /usr/local/bin/handoff
# The sample configuration and rules; mount your own over /etc/handoff (compose) or
# point HANDOFF_CONFIG at a ConfigMap (deploy/k8s).
COPY deploy/config/handoff.toml deploy/config/rules.toml /etc/handoff/
# The sample binds loopback; in a container both listeners must be reachable from outside.
ENV HANDOFF_CONFIG=/etc/handoff/handoff.toml \
    HANDOFF_INGEST_LISTEN=0.0.0.0:8080 \
    HANDOFF_ADMIN_LISTEN=0.0.0.0:9464 \
    HANDOFF_LOG_FORMAT=json
# Numeric (distroless "nonroot"), so Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
# 8080: public API (ingest). 9464: internal listener of every role (/metrics, /healthz, /readyz).
EXPOSE 8080 9464
ENTRYPOINT ["/usr/local/bin/handoff"]
CMD ["all"]
