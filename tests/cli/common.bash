# Sourced by the CLI tests (not a test itself: CTest runs tests/cli/*.sh).
# argv[1] of the test is the ipcx binary; sets $ipcx, $tmp (removed on exit)
# and fail().  With IPCX_CLI_IPCNS=1 set before sourcing, the test re-runs
# itself in a private IPC namespace where it may (then IPCX_TEST_IPCNS=1), so
# that counting System V objects is not disturbed by other processes.
set -euo pipefail
ipcx=$1
if [ "${IPCX_CLI_IPCNS:-}" = 1 ] && [ -z "${IPCX_TEST_IPCNS:-}" ] &&
	unshare --ipc true 2>/dev/null; then
	IPCX_TEST_IPCNS=1 exec unshare --ipc bash "$0" "$@"
fi
command -v jq >/dev/null || { echo "jq is missing (scripts/install-deps.sh)"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
