#!/usr/bin/env bash
# Installs Pebble (a small ACME test CA) and pebble-challtestsrv (its
# challenge/DNS test server) into $(go env GOPATH)/bin, for the ACME tests of
# internal/tlsx. Idempotent: when both binaries are already present and report
# the pinned version, it does nothing and returns at once.
#
# Usage: test/acme/install.sh        (set FORCE=1 to reinstall)
set -euo pipefail

PEBBLE_VERSION="${PEBBLE_VERSION:-v2.10.3}"
MODULE="github.com/letsencrypt/pebble/v2"

gobin="$(go env GOBIN)"
if [ -z "$gobin" ]; then
	gobin="$(go env GOPATH | cut -d: -f1)/bin"
fi

# A binary counts as installed when `go version -m` shows it was built from the
# pinned module version.
installed() {
	local bin="$gobin/$1"
	[ -x "$bin" ] || return 1
	go version -m "$bin" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+${MODULE//./\\.}[[:space:]]+${PEBBLE_VERSION//./\\.}([[:space:]]|$)"
}

need=()
for cmd in pebble pebble-challtestsrv; do
	if [ "${FORCE:-0}" = 1 ] || ! installed "$cmd"; then
		need+=("$MODULE/cmd/$cmd@$PEBBLE_VERSION")
	fi
done

if [ ${#need[@]} -eq 0 ]; then
	echo "pebble and pebble-challtestsrv $PEBBLE_VERSION already installed in $gobin"
	exit 0
fi

for pkg in "${need[@]}"; do
	echo "go install $pkg"
	go install "$pkg"
done

# The tests read Pebble's test certificates from the module cache; make sure
# the module source is there (go install already downloaded it).
go mod download "$MODULE@$PEBBLE_VERSION" >/dev/null 2>&1 || true

echo "installed pebble and pebble-challtestsrv $PEBBLE_VERSION in $gobin"
