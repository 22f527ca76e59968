#!/usr/bin/env python3
"""A minimal stand-in calendar for exercising the client tools offline.

Usage: mock_calendar.py PORT HMAC_KEY_HEX [RECORD.json]

Answers POST /digest the way the reference Python otsd shapes a response
for a one-leaf round:
    append nonce(16), sha256, prepend time(4, BE), append mac(8),
    PendingAttestation(http://127.0.0.1:PORT)
with mac = sha256(time || root || derive_key_for_idx(key, time))[:8].
If RECORD.json is given, every answer is (re)written there in the format
check_responses.py reads. Listens on 127.0.0.1 only. Not a server under
test: it exists so tests/js/stamp.js and `ots stamp` can be tried without
otsd, and so check_responses.py can be checked end to end.
"""

import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

from opentimestamps.core.notary import PendingAttestation
from opentimestamps.core.op import OpAppend, OpPrepend, OpSHA256
from opentimestamps.core.serialize import BytesSerializationContext
from opentimestamps.core.timestamp import Timestamp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_responses import derive_key_for_idx, sha256  # noqa: E402


def make_response(digest, key, uri):
    ts = Timestamp(digest)
    nonce = os.urandom(16)
    t = ts.ops.add(OpAppend(nonce))
    t = t.ops.add(OpSHA256())
    root = t.msg
    now = int(time.time()).to_bytes(4, 'big')
    mac = sha256(now + root + derive_key_for_idx(key, int.from_bytes(now, 'big')))[:8]
    t = t.ops.add(OpPrepend(now))
    t = t.ops.add(OpAppend(mac))
    t.attestations.add(PendingAttestation(uri))
    ctx = BytesSerializationContext()
    ts.serialize(ctx)
    return ctx.getbytes()


def main(argv):
    port, key = int(argv[1]), bytes.fromhex(argv[2])
    record = argv[3] if len(argv) > 3 else None
    uri = 'http://127.0.0.1:%d' % port
    answers = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            n = int(self.headers.get('Content-Length') or 0)
            digest = self.rfile.read(n)
            if self.path != '/digest' or not 1 <= len(digest) <= 64:
                self.send_error(400 if self.path == '/digest' else 404)
                return
            body = make_response(digest, key, uri)
            self.send_response(200)
            self.send_header('Content-Type', 'application/octet-stream')
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            if record:
                answers.append({'digest': digest.hex(), 'status': 200, 'response': body.hex()})
                with open(record, 'w') as f:
                    json.dump({'hmac_key': key.hex(), 'uri': uri, 'answers': answers}, f, indent=1)

        def log_message(self, fmt, *args):
            sys.stderr.write('mock_calendar: ' + fmt % args + '\n')

    HTTPServer(('127.0.0.1', port), Handler).serve_forever()


if __name__ == '__main__':
    sys.exit(main(sys.argv))
