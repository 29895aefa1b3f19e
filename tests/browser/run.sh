#!/usr/bin/env bash
# The dashboard's browser test, as ctest runs it: tests/browser/run.sh BUILD_DIR
# Installs playwright-core from package-lock.json (npm ci, no browser download: the test drives
# Debian's /usr/bin/chromium), then runs dashboard.test.mjs and programs.test.mjs against
# BUILD_DIR's programs.
# Ends with the line "N passed, M failed".
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:?usage: run.sh BUILD_DIR}" && pwd)

fail() { echo "test_browser: $*" >&2; echo "0 passed, 1 failed"; exit 1; }
# The node and npm that make deps installs (Debian's nodejs 18 and npm, in /usr/bin) come first,
# whatever other node PATH has; npm's own #!/usr/bin/env node then finds the same node.
PATH=/usr/bin:$PATH
command -v node >/dev/null || fail "node is missing (make deps installs it)"
command -v npm >/dev/null || fail "npm is missing (make deps installs it)"
[ -x /usr/bin/chromium ] || fail "/usr/bin/chromium is missing (make deps installs Debian's chromium)"
# playwright-core 1.61 is the newest that runs on Debian 12's node 18 (1.62 and later need 20).
major=$(node -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 18 ] || fail "node $major is too old: playwright-core needs node 18 or later"
echo "test_browser: node $(node --version) ($(command -v node)), npm $(npm --version)," \
  "$(/usr/bin/chromium --version 2>/dev/null)"

# npm ci when node_modules is missing or older than the lock file; flock keeps two runs apart.
if [ ! -f "$here/node_modules/.package-lock.json" ] ||
   [ "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]; then
  (cd "$here" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 flock "$here/package-lock.json" \
     npm ci --no-audit --no-fund --loglevel=error) || fail "npm ci failed"
fi

mkdir -p "$build/tests/artifacts"
tap="$build/tests/artifacts/browser-test.tap"
rm -f "$tap"
TESSERA_BIN_DIR="$build" node --test --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$tap" "$here/dashboard.test.mjs" \
  "$here/programs.test.mjs"
rc=$?
pass=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$tap" 2>/dev/null | tail -1)
failed=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$tap" 2>/dev/null | tail -1)
[ -n "$failed" ] || failed=1
[ "$rc" -eq 0 ] || [ "$failed" -gt 0 ] || failed=1
echo "${pass:-0} passed, ${failed} failed"
exit "$rc"
