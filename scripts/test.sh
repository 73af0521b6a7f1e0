#!/usr/bin/env bash
# Runs every Quorum test on a fresh machine: installs what the tests need (etcd and etcdctl from
# Debian's packages, for the compatibility tests), checks formatting and lints, then runs the
# whole workspace's tests. Usage: scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# A full run builds every crate once: incremental caches only cost time and disk here (they
# grew to tens of GB over repeated runs sharing a target dir).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

# etcd and etcdctl: the reference the compatibility tests compare with and drive us through.
# protoc: the third-party etcd client library the tests use (etcd-client) compiles its protos
# with it (our own crates use the pure-Rust protox and need nothing installed).
if ! command -v etcd >/dev/null 2>&1 || ! command -v etcdctl >/dev/null 2>&1 \
    || ! command -v protoc >/dev/null 2>&1; then
    step "installing etcd-server, etcd-client and protobuf-compiler (Debian packages) for the tests"
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        # Never let the package start a system etcd on 2379: our tests own the ports they use.
        policy=/usr/sbin/policy-rc.d
        created_policy=0
        if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created_policy=1; fi
        apt-get update -qq || echo "warning: apt-get update failed"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server etcd-client protobuf-compiler \
            || echo "warning: could not install etcd; tests that need it will say so and skip"
        [ "$created_policy" = 1 ] && rm -f "$policy"
    else
        echo "warning: etcd/etcdctl missing and apt-get unavailable (or not root); tests that need them will skip"
    fi
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test"
cargo test --workspace "$@"
