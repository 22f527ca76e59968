#!/usr/bin/env python3
"""Check calendar POST /digest responses with python-opentimestamps.

Usage: check_responses.py ANSWERS.json

ANSWERS.json is
    {"hmac_key": hex, "uri": str,
     "answers": [{"digest": hex, "response": hex, "status": 200}, ...]}

("status" is optional; answers whose status is not 200 are skipped.)

For every answer the response body is deserialized as a Timestamp on the
digest (exactly as the `ots` client does), and the following are checked:

  * the whole body is consumed and re-serializes byte-for-byte identically;
  * the timestamp carries exactly one attestation, a PendingAttestation whose
    uri equals the given one;
  * the message it attests is the 44-byte journal commitment
        time (4 bytes, big-endian) || round root (32) || mac (8)
    and mac == sha256(time || root || derive_key_for_idx(hmac_key, time))[:8],
    the derivation used by the reference Python otsd.

Prints "N passed, M failed"; exits non-zero if anything failed or nothing ran.
Run it with the virtualenv python from tools/setup-clients.sh ($OTS_PYTHON).
"""

import hashlib
import json
import sys

from opentimestamps.core.notary import PendingAttestation
from opentimestamps.core.serialize import (BytesDeserializationContext,
                                           BytesSerializationContext)
from opentimestamps.core.timestamp import Timestamp


def sha256(b):
    return hashlib.sha256(b).digest()


def derive_key_for_idx(key, idx, bits=32):
    """Python otsd's per-time key derivation (iterative form of its recursion)."""
    while bits:
        key = sha256(key + (b'\xff' if (idx >> (bits - 1)) & 1 else b'\x00'))
        bits -= 1
    return key


def expected_mac(hmac_key, time_bytes, root):
    idx = int.from_bytes(time_bytes, 'big')
    return sha256(time_bytes + root + derive_key_for_idx(hmac_key, idx))[:8]


def check_answer(answer, hmac_key, uri):
    """Returns None if the answer is good, else a string saying what is wrong."""
    digest = bytes.fromhex(answer['digest'])
    resp = bytes.fromhex(answer['response'])

    ctx = BytesDeserializationContext(resp)
    try:
        ts = Timestamp.deserialize(ctx, digest)
        ctx.assert_eof()
    except Exception as e:  # noqa: BLE001 - any parse error is a failure
        return 'does not deserialize: %s: %s' % (type(e).__name__, e)

    out = BytesSerializationContext()
    ts.serialize(out)
    if out.getbytes() != resp:
        return 're-serialization differs: %s' % out.getbytes().hex()

    atts = list(ts.all_attestations())
    if len(atts) != 1:
        return 'expected exactly 1 attestation, found %d' % len(atts)
    msg, att = atts[0]
    if not isinstance(att, PendingAttestation):
        return 'attestation is %r, not a PendingAttestation' % att
    if att.uri != uri:
        return 'attestation uri %r != %r' % (att.uri, uri)

    if len(msg) != 44:
        return 'commitment is %d bytes, not 44: %s' % (len(msg), msg.hex())
    time_bytes, root, mac = msg[:4], msg[4:36], msg[36:]
    want = expected_mac(hmac_key, time_bytes, root)
    if mac != want:
        return 'mac %s != expected %s (commitment %s)' % (mac.hex(), want.hex(), msg.hex())
    return None


def main(argv):
    if len(argv) != 2:
        print('usage: %s ANSWERS.json' % argv[0], file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        data = json.load(f)
    hmac_key = bytes.fromhex(data['hmac_key'])
    uri = data['uri']

    passed = failed = skipped = 0
    for i, answer in enumerate(data.get('answers', [])):
        if answer.get('status', 200) != 200:
            skipped += 1
            continue
        try:
            err = check_answer(answer, hmac_key, uri)
        except Exception as e:  # noqa: BLE001 - malformed entry
            err = 'malformed answer: %s: %s' % (type(e).__name__, e)
        if err is None:
            passed += 1
        else:
            failed += 1
            print('FAIL answer %d (digest %s): %s' % (i, answer.get('digest'), err))
    summary = '%d passed, %d failed' % (passed, failed)
    if skipped:
        summary += ', %d skipped' % skipped
    print(summary)
    return 1 if failed or passed == 0 else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
