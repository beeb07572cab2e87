#!/usr/bin/env python3
"""Test helper: copies a GGUF file, setting metadata keys (hostile values
included), so tests can give the appliance files that say odd things about
themselves.

usage: gguf_set_meta.py IN OUT KEY=VALUE...
VALUE is Python-escaped text ("\\x1b", "\\u202e", "\\xff" for a raw byte);
KEY:u32=N stores an integer. Existing keys with the same name are replaced.
Tensor data is moved to the new aligned data offset unchanged."""
import struct
import sys

SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?",
           10: "Q", 11: "q", 12: "d"}


class Reader:
    def __init__(self, data):
        self.d, self.p = data, 0

    def take(self, fmt):
        v = struct.unpack_from("<" + fmt, self.d, self.p)
        self.p += struct.calcsize(fmt)
        return v[0]

    def raw_string(self):
        n = self.take("Q")
        s = self.d[self.p:self.p + n]
        self.p += n
        return s

    def skip_value(self, t):
        if t in SCALARS:
            self.take(SCALARS[t])
        elif t == 8:
            self.raw_string()
        elif t == 9:
            et, n = self.take("I"), self.take("Q")
            for _ in range(n):
                self.skip_value(et)
        else:
            raise ValueError("unknown GGUF type %d" % t)


def gguf_string(b):
    return struct.pack("<Q", len(b)) + b


def main():
    src, dst, pairs = sys.argv[1], sys.argv[2], sys.argv[3:]
    data = open(src, "rb").read()
    r = Reader(data)
    assert data[:4] == b"GGUF"
    r.p = 4
    version, n_tensors, n_kv = r.take("I"), r.take("Q"), r.take("Q")
    kvs, alignment = [], 32
    for _ in range(n_kv):
        start = r.p
        key = r.raw_string()
        t = r.take("I")
        vstart = r.p
        r.skip_value(t)
        if key == b"general.alignment":
            alignment = struct.unpack_from("<I", data, vstart)[0]
        kvs.append((key, data[start:r.p]))
    tensors_start = r.p
    for _ in range(n_tensors):
        r.raw_string()
        dims = r.take("I")
        for _ in range(dims):
            r.take("Q")
        r.take("I")
        r.take("Q")
    tensor_infos = data[tensors_start:r.p]
    data_start = (r.p + alignment - 1) // alignment * alignment
    new = {}
    for pair in pairs:
        key, value = pair.split("=", 1)
        if key.endswith(":u32"):
            key = key[:-4]
            blob = struct.pack("<I", 4) + struct.pack("<I", int(value))
        else:
            raw = value.encode("latin-1", "backslashreplace").decode("unicode_escape")
            # \xNN escapes are raw bytes; other characters are UTF-8.
            b = b"".join(bytes([ord(c)]) if ord(c) < 256 and "\\x%02x" % ord(c) in value
                         else c.encode("utf-8") for c in raw)
            blob = struct.pack("<I", 8) + gguf_string(b)
        new[key.encode()] = gguf_string(key.encode()) + blob
    out = [kv for k, kv in kvs if k not in new] + list(new.values())
    head = (b"GGUF" + struct.pack("<IQQ", version, n_tensors, len(out)) + b"".join(out)
            + tensor_infos)
    head += b"\0" * (-len(head) % alignment)
    open(dst, "wb").write(head + data[data_start:])


if __name__ == "__main__":
    main()
