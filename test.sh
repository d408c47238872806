#!/usr/bin/env bash
# Runs cvd's whole test suite with the race detector. The tests drive real
# programs (swaks with TLS, gpg, gpg-wks-client, Postfix's smtp-sink,
# headless Chromium, mbsync, Python's imaplib, python3-dkim); this script installs them
# from Debian when missing. With CI=true (as .ci/run sets) a test that
# cannot run for want of one fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")"

need=()
command -v swaks >/dev/null 2>&1 || need+=(swaks)
command -v gpg >/dev/null 2>&1 || need+=(gnupg)
command -v gpg-wks-client >/dev/null 2>&1 || [ -x /usr/lib/gnupg/gpg-wks-client ] || need+=(gpg-wks-client)
command -v smtp-sink >/dev/null 2>&1 || [ -x /usr/sbin/smtp-sink ] || need+=(postfix)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v mbsync >/dev/null 2>&1 || need+=(isync)
command -v python3 >/dev/null 2>&1 || need+=(python3)
# swaks --tls needs Net::SSLeay (and IO::Socket::SSL), which
# --no-install-recommends leaves out.
perl -MNet::SSLeay -e1 >/dev/null 2>&1 || need+=(libnet-ssleay-perl)
perl -MIO::Socket::SSL -e1 >/dev/null 2>&1 || need+=(libio-socket-ssl-perl)
# The independent DKIM verifier (internal/dkimtest).
/usr/bin/python3 -c 'import dkim, dns.query' >/dev/null 2>&1 || need+=(python3-dkim python3-dnspython)
# rspamd scores reports in the spam filter test; the test runs its own
# instance on a loopback port (no system service is needed).
command -v rspamd >/dev/null 2>&1 || need+=(rspamd)
if ((${#need[@]})); then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	echo "test.sh: installing ${need[*]}" >&2
	# Postfix is wanted for its smtp-sink test server only: no mail system.
	echo "postfix postfix/main_mailer_type select No configuration" | $sudo debconf-set-selections
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

exec go test -race -count=1 -timeout 25m ./... "$@"
