#!/usr/bin/env bash
# Installs (apt-get) the C libraries the build links or probes, when missing:
#   libssl-dev            rdkafka's TLS (OpenSSL, linked dynamically; the image ships libssl3)
#   libcurl4-openssl-dev  librdkafka's configure turns OAUTHBEARER/OIDC on only if it finds
#                         libcurl; the binary links the libcurl curl-sys builds, statically
# The Docker build stage (rust:bookworm) has both. A target dir built before they were
# installed keeps a librdkafka without OIDC: `cargo clean -p rdkafka-sys` rebuilds it.
set -euo pipefail
missing=()
for package in libssl-dev libcurl4-openssl-dev; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing ${missing[*]} (apt-get)" >&2
  if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
