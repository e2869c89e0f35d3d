#!/usr/bin/env bash
# Installs everything the real-client compatibility suite (tests/compat) needs, on a fresh
# Debian 12 machine as root, with only crates.io / PyPI / Debian / npm reachable:
#
#   * Debian packages: kcat, a headless JDK (javac + java), python3-venv, unzip;
#   * a Python venv at .venv/ with the pins from tests/compat/requirements.txt;
#   * the Java kafka-clients 3.9.1 jar and its compression/logging jars. They are not on
#     Maven here; they ship inside the PyPI wheel shigawire-apache-flink-libraries, which
#     we download with pip (no install) and unzip into tests/compat/.deps/jars/;
#   * the Java programs in tests/compat/java compiled into tests/compat/.deps/classes/.
#
# Idempotent and non-interactive: every step checks whether its result already exists
# (marker files hold the hash of the inputs) and skips itself if so. Safe to run from any
# working directory. .venv/ and tests/compat/.deps/ are gitignored: never commit jars.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
COMPAT="$ROOT/tests/compat"
DEPS="$COMPAT/.deps"
JARS="$DEPS/jars"
CLASSES="$DEPS/classes"
VENV="$ROOT/.venv"

# The wheel that carries kafka-clients 3.9.1 (checked: pyflink/lib/kafka-clients.jar,
# kafka/kafka-version.properties says version=3.9.1). jars.sha256 pins the five jars we use.
FLINK_WHEEL_PKG="shigawire-apache-flink-libraries"
FLINK_WHEEL_VERSION="2.0.0.post1"
KAFKA_CLIENTS_VERSION="3.9.1"
JAR_NAMES=(kafka-clients slf4j-api lz4-java snappy-java zstd-jni)

export DEBIAN_FRONTEND=noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK=1
export PIP_NO_INPUT=1

log() { printf '[setup-test-deps] %s\n' "$*"; }

# Hash of the contents of the given files (in the order given), independent of their paths.
sha_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

# ---------------------------------------------------------------- Debian packages
APT_UPDATED=0
apt_install() {
    if [ "$(id -u)" -ne 0 ]; then
        log "need to install Debian packages ($*) but not root; install them and re-run" >&2
        exit 1
    fi
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        apt-get update -qq
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

need_pkgs=()
command -v kcat >/dev/null 2>&1 || need_pkgs+=(kcat)
command -v javac >/dev/null 2>&1 || need_pkgs+=(default-jdk-headless)
command -v unzip >/dev/null 2>&1 || need_pkgs+=(unzip)
command -v python3 >/dev/null 2>&1 || need_pkgs+=(python3 python3-venv)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
    apt_install "${need_pkgs[@]}"
else
    log "kcat, javac, unzip, python3 present"
fi

# ---------------------------------------------------------------- Python venv
REQ="$COMPAT/requirements.txt"
REQ_MARKER="$VENV/.strom-requirements.sha256"
req_hash="$(sha_of "$REQ")"

make_venv() {
    local py="$1"
    rm -rf "$VENV"
    "$py" -m venv "$VENV"
}

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    log "creating venv at $VENV"
    # Prefer the python3 on PATH; Debian's own python3 needs python3-venv for ensurepip.
    if ! make_venv python3 2>/dev/null; then
        apt_install python3-venv
        make_venv /usr/bin/python3
    fi
fi

if [ -f "$REQ_MARKER" ] && [ "$(cat "$REQ_MARKER")" = "$req_hash" ]; then
    log "venv up to date ($REQ)"
else
    log "installing $REQ into venv"
    "$VENV/bin/python" -m pip install -q -r "$REQ"
    echo "$req_hash" >"$REQ_MARKER"
fi

# ---------------------------------------------------------------- Java jars
mkdir -p "$JARS"
jars_ok() {
    (cd "$JARS" && sha256sum --quiet -c "$COMPAT/jars.sha256" >/dev/null 2>&1)
}
if jars_ok; then
    log "jars present and verified ($JARS)"
else
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    log "downloading $FLINK_WHEEL_PKG==$FLINK_WHEEL_VERSION (for kafka-clients $KAFKA_CLIENTS_VERSION)"
    "$VENV/bin/python" -m pip download -q --no-deps \
        "$FLINK_WHEEL_PKG==$FLINK_WHEEL_VERSION" -d "$tmp"
    wheel="$(ls "$tmp"/*.whl)"
    for name in "${JAR_NAMES[@]}"; do
        unzip -o -q -j "$wheel" "pyflink/lib/$name.jar" -d "$JARS"
    done
    got="$(unzip -p "$JARS/kafka-clients.jar" kafka/kafka-version.properties | sed -n 's/^version=//p')"
    if [ "$got" != "$KAFKA_CLIENTS_VERSION" ]; then
        log "kafka-clients.jar in the wheel is version '$got', expected $KAFKA_CLIENTS_VERSION" >&2
        exit 1
    fi
    if ! jars_ok; then
        log "jar checksums do not match tests/compat/jars.sha256" >&2
        (cd "$JARS" && sha256sum -c "$COMPAT/jars.sha256") >&2 || true
        exit 1
    fi
    rm -rf "$tmp"
    trap - EXIT
    log "jars extracted to $JARS (kafka-clients $got)"
fi

# ---------------------------------------------------------------- Java classes
# Keep in sync with compile_java() in tests/compat/conftest.py (same marker format).
CLASS_MARKER="$CLASSES/.sources.sha256"
# Inputs: the .java files sorted by name (C collation), then jars.sha256.
mapfile -t java_srcs < <(cd "$COMPAT/java" && LC_ALL=C ls -1 -- *.java)
src_hash="$(cd "$COMPAT/java" && sha_of "${java_srcs[@]}" "$COMPAT/jars.sha256")"
if [ -f "$CLASS_MARKER" ] && [ "$(cat "$CLASS_MARKER")" = "$src_hash" ]; then
    log "java classes up to date ($CLASSES)"
else
    log "compiling tests/compat/java/*.java"
    rm -rf "$CLASSES"
    mkdir -p "$CLASSES"
    javac -encoding UTF-8 -nowarn -d "$CLASSES" -cp "$JARS/*" "$COMPAT"/java/*.java
    echo "$src_hash" >"$CLASS_MARKER"
fi

log "done"
