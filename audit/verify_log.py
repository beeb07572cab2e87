#!/usr/bin/env python3
"""Re-verify an appliance audit log with the standard library only (FORMAT.md).

usage: verify_log.py DB [--checkpoint FILE] [--pubkey PEM]
Exit 0: the chain verifies ("incomplete" request ids are listed, not errors).
Exit 1: "FAIL <first bad seq> <code>: <reason>"; 2: usage or unreadable file.
"""
import base64, hashlib, json, re, sqlite3, sys

TAG = b"APPLIANCE-AUDIT-ENTRY-V1\x00"
KINDS = {"init", "session_start", "model_load", "prompt", "output", "attestation", "refusal",
         "sandbox_violation", "policy_change", "audit_read", "checkpoint", "error"}
TS = re.compile(r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)\.\d{3}Z")
sha3 = lambda *parts: hashlib.sha3_256(b"".join(parts)).digest()

# --- Ed25519 verification (RFC 8032 section 5.1.7), for checkpoint signatures ---
P, L = 2**255 - 19, 2**252 + 27742317777372353535851937790883648493
D, SQRT_M1 = -121665 * pow(121666, P - 2, P) % P, pow(2, (P - 1) // 4, P)

def ed_add(a, b):  # extended twisted Edwards coordinates, a = -1
    A, B = (a[1] - a[0]) * (b[1] - b[0]) % P, (a[1] + a[0]) * (b[1] + b[0]) % P
    C, Z = 2 * a[3] * b[3] * D % P, 2 * a[2] * b[2] % P
    E, F, G, H = B - A, Z - C, Z + C, B + A
    return (E * F % P, G * H % P, F * G % P, E * H % P)

def ed_mul(s, p):
    q = (0, 1, 1, 0)
    while s:
        q, p, s = (ed_add(q, p) if s & 1 else q), ed_add(p, p), s >> 1
    return q

def ed_decode(b):
    y = int.from_bytes(b, "little"); sign, y = y >> 255, y & ((1 << 255) - 1)
    if y >= P: return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P: x = x * SQRT_M1 % P
    if (x * x - x2) % P or (x == 0 and sign): return None
    if x & 1 != sign: x = P - x
    return (x, y, 1, x * y % P)

BASE = ed_decode((4 * pow(5, P - 2, P) % P).to_bytes(32, "little"))

def ed25519_ok(pk, msg, sig):
    A, R, s = ed_decode(pk), ed_decode(sig[:32]), int.from_bytes(sig[32:], "little")
    if A is None or R is None or s >= L: return False
    k = int.from_bytes(hashlib.sha512(sig[:32] + pk + msg).digest(), "little") % L
    l, r = ed_mul(s, BASE), ed_add(R, ed_mul(k, A))
    return (l[0] * r[2] - r[0] * l[2]) % P == 0 and (l[1] * r[2] - r[1] * l[2]) % P == 0

# --- RFC 6962 Merkle tree with SHA3-256 ---
def merkle_root(hashes):
    if not hashes: return sha3(b"")
    if len(hashes) == 1: return sha3(b"\x00", hashes[0])
    k = 1
    while k * 2 < len(hashes): k *= 2
    return sha3(b"\x01", merkle_root(hashes[:k]), merkle_root(hashes[k:]))

class CompactRange:
    """Roots of the perfect subtrees over the leaves so far: O(log n) per root."""
    def __init__(self): self.nodes, self.size = [], 0
    def push(self, entry_hash):
        self.nodes.append(sha3(b"\x00", entry_hash))
        n, self.size = self.size, self.size + 1
        while n & 1:
            r = self.nodes.pop(); self.nodes[-1] = sha3(b"\x01", self.nodes[-1], r); n >>= 1
    def root(self):
        if not self.nodes: return sha3(b"")
        r = self.nodes[-1]
        for left in reversed(self.nodes[:-1]): r = sha3(b"\x01", left, r)
        return r

# --- signed notes (C2SP) and checkpoints ---
def parse_checkpoint(note):
    """Returns (text bytes, origin, size, root, head, key name, key id, sig) or raises."""
    text, sep, sigs = note.rpartition(b"\n\n")
    text += b"\n"
    line = sigs.split(b"\n")[0].decode()
    assert sep and line.startswith("\u2014 ") and not re.search(rb"[\x00-\x09\x0b-\x1f]", note)
    name, blob = line[2:].split(" ")
    blob = base64.b64decode(blob, validate=True)
    lines = text.decode().split("\n")[:-1]
    assert len(blob) == 68 and re.fullmatch(r"0|[1-9]\d*", lines[1])
    heads = [base64.b64decode(l[11:], validate=True) for l in lines[3:] if l.startswith("chain-head ")]
    return text, lines[0], int(lines[1]), base64.b64decode(lines[2], validate=True), heads[0], name, blob[:4], blob[4:]

def key_id(name, pk):
    return hashlib.sha256(name.encode() + b"\n\x01" + pk).digest()[:4]

def sig_ok(cp, pk):
    return key_id(cp[5], pk) == cp[6] and ed25519_ok(pk, cp[0], cp[7])

class Bad(Exception):
    pass

def canonical(rec):
    no = lambda v: (_ for _ in ()).throw(ValueError(v))
    def pairs(kv):
        if len({k for k, _ in kv}) != len(kv): raise ValueError("duplicate key")
        return dict(kv)
    obj = json.loads(rec.decode("utf-8"), parse_float=no, parse_constant=no, object_pairs_hook=pairs)
    again = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ok = again == rec and isinstance(obj, dict) and set(obj) == {"seq", "ts", "kind", "request_id", "actor", "log_id", "body"}
    ok = ok and type(obj["seq"]) is int and isinstance(obj["body"], dict) and obj["kind"] in KINDS
    ok = ok and all(isinstance(obj[k], str) for k in ("ts", "request_id", "actor", "log_id"))
    if not (ok and TS.fullmatch(obj["ts"])): raise ValueError("shape")
    return obj

def check_checkpoint_entry(seq, body, origin, tree, prev, keys):
    try:
        cp = parse_checkpoint(body["checkpoint"].encode())
        pk = base64.b64decode(body["public_key"], validate=True)
        good = (body["tree_size"] == seq - 1 == cp[2] and cp[1] == origin and len(pk) == 32
                and cp[3] == tree.root() and cp[4] == prev and sig_ok(cp, pk))
    except Exception:
        good = False
    if not good: raise Bad(seq, "checkpoint", f"checkpoint entry {seq} does not verify")
    keys.append(pk)

def verify(db, checkpoint=None, pubkey=None):
    quoted = db.replace("%", "%25").replace("?", "%3F").replace("#", "%23")
    try:
        con = sqlite3.connect(f"file:{quoted}?mode=ro", uri=True)
        meta = dict(con.execute("SELECT key, value FROM meta"))
    except sqlite3.OperationalError:  # a WAL-mode copy on read-only media
        con = sqlite3.connect(f"file:{quoted}?immutable=1", uri=True)
        meta = dict(con.execute("SELECT key, value FROM meta"))
    if (meta.get("format"), meta.get("format_version")) != ("appliance-audit", "1"):
        raise Bad(0, "meta", "not an appliance audit log of format version 1")
    log_id, origin = meta["log_id"], f"appliance.audit/{meta['log_id']}/sha3-256"
    prev, last_ts, hashes, prompts, closed, keys, tree = bytes(32), "", [], [], {}, [], CompactRange()
    rows = con.execute("SELECT seq, ts, kind, request_id, actor, record, prev_hash, hash FROM entries ORDER BY seq")
    for seq, ts, kind, rid, actor, rec, prev_col, hash_col in rows:
        n = len(hashes) + 1
        if seq != n: raise Bad(n, "gap", f"entry {n} is missing (next row is {seq})")
        try: obj = canonical(bytes(rec))
        except Exception: raise Bad(seq, "record", f"entry {seq}: record is not a canonical audit record")
        if obj["seq"] != seq: raise Bad(seq, "reorder", f"row {seq} holds the record of entry {obj['seq']}")
        if prev_col != prev: raise Bad(seq, "prev", f"entry {seq}: prev_hash is not the hash of entry {seq - 1}")
        if sha3(TAG, prev, bytes(rec)) != hash_col: raise Bad(seq, "hash", f"entry {seq}: hash mismatch")
        if [obj["ts"], obj["kind"], obj["request_id"], obj["actor"], obj["log_id"]] != [ts, kind, rid, actor, log_id]:
            raise Bad(seq, "column", f"entry {seq}: a column or the log id disagrees with the record")
        if ts < last_ts: raise Bad(seq, "clock", f"entry {seq}: timestamp {ts} is earlier than {last_ts}")
        if kind == "checkpoint": check_checkpoint_entry(seq, obj["body"], origin, tree, prev, keys)
        prev, last_ts = hash_col, ts
        hashes.append(hash_col); tree.push(hash_col)
        if kind == "prompt": prompts.append((seq, rid))
        if kind in ("output", "refusal", "error"): closed[rid] = seq  # the last one wins
    if checkpoint is not None:
        try: cp = parse_checkpoint(checkpoint)
        except Exception: raise Bad(0, "signature", "the checkpoint is not a well-formed signed note")
        if cp[1] != origin: raise Bad(0, "signature", f"the checkpoint is for '{cp[1]}', not this log")
        cands = [pubkey] if pubkey else [k for k in keys if key_id(cp[5], k) == cp[6]]
        if not cands or not sig_ok(cp, cands[0]): raise Bad(0, "signature", "the checkpoint signature does not verify")
        if cp[2] > len(hashes): raise Bad(len(hashes) + 1, "truncated", f"the log has {len(hashes)} entries, the checkpoint {cp[2]}")
        if merkle_root(hashes[:cp[2]]) != cp[3]: raise Bad(cp[2], "diverged", f"root at size {cp[2]} differs")
    # A prompt is complete when a later output/refusal/error carries its request id.
    return len(hashes), prev, [rid for seq, rid in prompts if closed.get(rid, 0) < seq]

def main(argv):
    args, opts = [], {}
    it = iter(argv)
    for a in it:
        if a in ("--checkpoint", "--pubkey"): opts[a] = next(it, None)
        else: args.append(a)
    if len(args) != 1 or None in opts.values():
        print(__doc__.strip().split("\n")[2], file=sys.stderr); return 2
    cp = open(opts["--checkpoint"], "rb").read() if "--checkpoint" in opts else None
    pk = None
    if "--pubkey" in opts:
        pem = open(opts["--pubkey"]).read().split("-----")[2]
        pk = base64.b64decode("".join(pem.split()))[-32:]
    try:
        n, head, incomplete = verify(args[0], cp, pk)
    except Bad as e:
        print(f"FAIL {e.args[0]} {e.args[1]}: {e.args[2]}"); return 1
    except (sqlite3.Error, KeyError) as e:
        print(f"error: {args[0]}: {e}", file=sys.stderr); return 2
    print(f"ok {n} entries, head {head.hex()}")
    for rid in incomplete: print(f"incomplete {rid}")
    return 0

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
