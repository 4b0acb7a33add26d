#!/usr/bin/env bash
# Install what building, testing and charting ipcx needs, from Debian's
# packages.  Does nothing when everything is there already.
set -euo pipefail

packages=(gcc make cmake pkg-config libcmocka-dev python3 jq)
# Optional: charts in docs and lab output (not needed to build or test).
optional=(gnuplot-nox)

missing=()
for p in "${packages[@]}" "${optional[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
	sudo=()
elif command -v sudo >/dev/null; then
	sudo=(sudo)
else
	echo "install-deps: missing ${missing[*]}, and not root and no sudo to install them" >&2
	exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
if ! "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
	# The optional packages must not stop a build.
	"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}"
fi
