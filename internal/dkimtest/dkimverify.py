#!/usr/bin/python3
# Verify every DKIM-Signature of the message on stdin with Debian's
# python3-dkim, asking only the DNS server given as HOST:PORT for keys.
# Prints one line per signature: "s=SELECTOR d=DOMAIN a=ALGO pass|fail".
# Exit status 0 when there is at least one signature and all pass.
import sys

import dkim
import dns.message
import dns.query
import dns.rdatatype

host, port = sys.argv[1].rsplit(":", 1)


def txt(name, timeout=5):
    if isinstance(name, bytes):
        name = name.decode()
    q = dns.message.make_query(name, dns.rdatatype.TXT)
    r = dns.query.tcp(q, host, port=int(port), timeout=timeout)
    for rr in r.answer:
        if rr.rdtype == dns.rdatatype.TXT:
            return b"".join(list(rr.items)[0].strings)
    return None


msg = sys.stdin.buffer.read()
d = dkim.DKIM(msg)
sigs = [v for k, v in d.headers if k.lower() == b"dkim-signature"]
if not sigs:
    print("no DKIM-Signature")
    sys.exit(1)
ok = True
for i, raw in enumerate(sigs):
    tags = dkim.util.parse_tag_value(b"".join(raw.split()))
    try:
        res = d.verify(idx=i, dnsfunc=txt)
    except Exception as e:  # report, never hide
        print("error:", e)
        res = False
    ok = ok and res
    print("s=%s d=%s a=%s %s" % (tags[b"s"].decode(), tags[b"d"].decode(),
                                 tags[b"a"].decode(), "pass" if res else "fail"))
sys.exit(0 if ok else 1)
