#!/usr/bin/env bash
# The project's one test command (CI runs it through .ci/run):
#
#   1. scripts/setup-test-deps.sh        kcat, JDK, .venv, kafka-clients jars (idempotent)
#   2. cargo fmt --all -- --check
#   3. cargo test --workspace --all-targets
#   4. cargo build --workspace --all-targets   (reuses what step 3 compiled; makes sure
#                                        target/debug/strom and the examples exist for step 6)
#   5. cargo clippy --workspace --all-targets -- -D warnings
#   6. .venv/bin/pytest tests/compat      real clients against target/debug/strom
#
# The compat suite runs against the dev-profile build the unit and integration tests use
# (optimised, debug assertions on), so the dependency tree is compiled once, not once per
# profile. Every step runs even if an earlier one failed (except the compat suite, which needs
# the step 4 build), so one run shows every problem; the exit code is non-zero if any failed.
# Works from any directory and without a terminal.
#
# Environment:
#   STROM_COMPAT_FULL=1       full-size compat matrix (100,000 records per cell; slower)
#   STROM_COMPAT_TIMEOUT=S    per-test timeout of the compat suite (default 300, full 1200)
#   STROM_TEST_SKIP_SETUP=1   do not run setup-test-deps.sh (deps known to be present)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TERM_COLOR=never
export PYTHONDONTWRITEBYTECODE=1

LOG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/strom-test.XXXXXX")"
START_ALL=$SECONDS
declare -a STEP_NAMES=() STEP_RESULTS=() STEP_SECONDS=()
FAILED=0

# step NAME CMD...: runs CMD, records pass/fail and duration, never aborts the script.
step() {
    local name="$1"
    shift
    local t0=$SECONDS rc=0
    printf '\n==> %s: %s\n' "$name" "$*"
    "$@" || rc=$?
    STEP_NAMES+=("$name")
    STEP_SECONDS+=("$((SECONDS - t0))")
    if [ "$rc" -eq 0 ]; then
        STEP_RESULTS+=("ok")
    else
        STEP_RESULTS+=("FAILED (exit $rc)")
        FAILED=1
    fi
    return 0
}

skip_step() {
    STEP_NAMES+=("$1")
    STEP_SECONDS+=("0")
    STEP_RESULTS+=("skipped: $2")
    FAILED=1
}

last_ok() { [ "${STEP_RESULTS[${#STEP_RESULTS[@]}-1]}" = "ok" ]; }

# cargo test's "test result: ... N passed; M failed; K ignored" lines, summed.
cargo_tests() {
    cargo test --workspace --all-targets 2>&1 | tee "$LOG_DIR/cargo-test.log"
}

compat() {
    local timeout="${STROM_COMPAT_TIMEOUT:-}"
    if [ -z "$timeout" ]; then
        if [ "${STROM_COMPAT_FULL:-}" = "1" ]; then timeout=1200; else timeout=300; fi
    fi
    STROM_COMPAT_PROFILE=debug STROM_BIN="$ROOT/target/debug/strom" .venv/bin/pytest -q tests/compat \
        -p no:cacheprovider --timeout="$timeout" --junitxml="$LOG_DIR/compat.xml"
}

if [ "${STROM_TEST_SKIP_SETUP:-}" = "1" ]; then
    echo "==> setup-test-deps: skipped (STROM_TEST_SKIP_SETUP=1)"
else
    step "setup-test-deps" bash "$ROOT/scripts/setup-test-deps.sh"
fi
step "cargo fmt --check" cargo fmt --all -- --check
step "cargo test" cargo_tests
step "cargo build" cargo build --workspace --all-targets
build_ok=0
last_ok && build_ok=1
step "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings
if [ "$build_ok" -eq 1 ] && [ -x .venv/bin/pytest ]; then
    step "compat (pytest)" compat
else
    skip_step "compat (pytest)" "needs the cargo build and .venv"
fi

# ---------------------------------------------------------------- summary
passed=0 failed=0 skipped=0
if [ -f "$LOG_DIR/cargo-test.log" ]; then
    read -r p f s < <(sed -n 's/^test result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed; \([0-9]*\) ignored.*/\1 \2 \3/p' \
        "$LOG_DIR/cargo-test.log" | awk '{p+=$1; f+=$2; s+=$3} END {print p+0, f+0, s+0}')
    passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
fi
if [ -f "$LOG_DIR/compat.xml" ]; then
    read -r p f s < <(.venv/bin/python - "$LOG_DIR/compat.xml" <<'EOF'
import sys
import xml.etree.ElementTree as ET

root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
t = f = s = 0
for suite in suites:
    t += int(suite.get("tests", 0))
    f += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    s += int(suite.get("skipped", 0))
print(t - f - s, f, s)
EOF
    )
    passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
fi

echo
echo "==================== strom test summary ===================="
for i in "${!STEP_NAMES[@]}"; do
    printf '  %-24s %-28s %5ss\n' "${STEP_NAMES[$i]}" "${STEP_RESULTS[$i]}" "${STEP_SECONDS[$i]}"
done
printf '  %-24s %-28s %5ss\n' "total" "" "$((SECONDS - START_ALL))"
echo "  logs: $LOG_DIR"
echo "============================================================"
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit "$FAILED"
