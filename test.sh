#!/usr/bin/env bash
# Runs cvd's whole test suite with the race detector. The tests drive real
# clients (swaks, gpg); this script installs them from Debian when missing.
set -euo pipefail
cd "$(dirname "$0")"

need=()
command -v swaks >/dev/null 2>&1 || need+=(swaks)
command -v gpg >/dev/null 2>&1 || need+=(gnupg)
if ((${#need[@]})); then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	echo "test.sh: installing ${need[*]}" >&2
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

exec go test -race -count=1 -timeout 25m ./... "$@"
