"""Regenerates python-differential.json: mutated and random proofs, each with what
python-opentimestamps makes of it (re-serialization and unread byte count, or the error class).

Usage: python gen_python_differential.py SEED COUNT > python-differential.json
"""
import random, json, os, sys
HERE = os.path.dirname(os.path.abspath(__file__))
from opentimestamps.core.serialize import BytesSerializationContext, BytesDeserializationContext, DeserializationError
from opentimestamps.core.timestamp import Timestamp

rnd = random.Random(int(sys.argv[1]))
fx = json.load(open(os.path.join(HERE, 'python-ots-fixtures.json')))
seeds = [(bytes.fromhex(fx['timestamps'][0]['msg']), bytes.fromhex(fx['timestamps'][0]['serialized']))]
for c in fx['merkle'][:9]:
    for p in c.get('paths', []):
        seeds.append((bytes(32), bytes.fromhex(p)))
marks = [0x00,0xff,0x08,0xf0,0xf1,0xf2,0xf3,0x02,0x03,0x67]
cases = []
for i in range(int(sys.argv[2])):
    kind = rnd.random()
    if kind < 0.6:
        msg, b = rnd.choice(seeds)
        b = bytearray(b)
        for _ in range(rnd.randint(1, 3)):
            r = rnd.random()
            if r < 0.5 and b:
                b[rnd.randrange(len(b))] = rnd.choice(marks + [rnd.randrange(256)])
            elif r < 0.75 and b:
                del b[rnd.randrange(len(b))]
            else:
                b.insert(rnd.randrange(len(b)+1), rnd.choice(marks))
        b = bytes(b)
    else:
        msg = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 40)))
        b = bytes(rnd.choice(marks) if rnd.random() < 0.7 else rnd.randrange(256) for _ in range(rnd.randint(0, 200)))
    try:
        ctx = BytesDeserializationContext(b)
        t = Timestamp.deserialize(ctx, msg)
        rest = ctx.fd.read()
        out = BytesSerializationContext(); t.serialize(out)
        res = {"ok": out.getbytes().hex(), "rest": len(rest)}
    except (DeserializationError, ValueError) as e:
        res = {"err": type(e).__name__}
    except Exception as e:
        res = {"crash": type(e).__name__}
    cases.append({"msg": msg.hex(), "input": b.hex(), **res})
json.dump(cases, sys.stdout)
