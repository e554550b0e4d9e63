#!/usr/bin/env bash
# Installs the load generators `make bench` needs that Debian does not package:
# fortio (HTTP latency and connection rate), built with `go install` into
# $TOOLS_BIN (default <repo>/.cache/tools, gitignored). iperf3 comes from Debian via
# hack/install-deps.sh. Idempotent: does nothing when the pinned version is present.
set -euo pipefail
FORTIO_VERSION="${FORTIO_VERSION:-v1.68.2}" # newest version the module proxy serves whole
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_BIN="${TOOLS_BIN:-$root/.cache/tools}"
GO="${GO:-go}"
stamp="$TOOLS_BIN/.fortio-$FORTIO_VERSION"
if [ -x "$TOOLS_BIN/fortio" ] && [ -f "$stamp" ]; then
  exit 0
fi
mkdir -p "$TOOLS_BIN"
echo "installing fortio $FORTIO_VERSION into $TOOLS_BIN"
# Outside the main module, so its go.mod is neither read nor changed.
(cd "$TOOLS_BIN" && GOBIN="$TOOLS_BIN" GOFLAGS=-buildvcs=false "$GO" install "fortio.org/fortio@$FORTIO_VERSION")
rm -f "$TOOLS_BIN"/.fortio-*
touch "$stamp"
