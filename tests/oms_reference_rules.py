#!/usr/bin/env python3
"""Test helper: the reference OMS signer's and verifier's rules for the key
method, written out with the Python standard library and the openssl CLI,
so the appliance's bundles can be checked against them (and bundles made by
them checked by the appliance) on a machine without the model_signing
package. Followed from sigstore/model-transparency, src/model_signing/ at
commit e3430730bca924e672b2e59f10524a7ffb5adf79 (image/OMS.md):

- _serialization/file.py and file_shard.py: each resource is named
  path.relative_to(model_path); for a single-file model that is the model
  path itself, so the name is "." (".:start:end" for shards); the subject
  name is model_path.name.
- _signing/signing.py Payload: the subject digest is sha256 over the raw
  resource digests in name order; dsse_payload_to_manifest refuses a bundle
  whose resources do not hash to it.
- verifying.py + manifest.py: the model is serialised again and the two
  manifests must be equal, {name: digest} for {name: digest}, names
  compared as PurePosixPath.
- _signing/sign_ec_key.py: publicKey.hint is sha256 of the key's PEM
  SubjectPublicKeyInfo text; ECDSA over the DSSE PAE with SHA-256 for P-256
  (the curve's hash), DER signature, keyid "".

usage:
  oms_reference_rules.py sign MODEL_FILE PRIVATE_KEY OUT [--shard-size N] [--basename]
  oms_reference_rules.py verify MODEL_FILE PUBLIC_KEY BUNDLE
verify exits 0 when the reference would accept, 1 (with the reason) when not.
"""
import base64
import hashlib
import json
import os
import pathlib
import subprocess
import sys
import tempfile

PAYLOAD_TYPE = "application/vnd.in-toto+json"
DEFAULT_IGNORES = [".git", ".gitattributes", ".github", ".gitignore"]


def pae(payload):
    t = PAYLOAD_TYPE.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def openssl(*args, data=None):
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=False)


def pem_spki(key_path, private):
    args = ["pkey", "-in", key_path, "-pubout"]
    if not private:
        args.insert(1, "-pubin")
    r = openssl(*args)
    if r.returncode != 0:
        sys.exit("openssl cannot read %s" % key_path)
    return r.stdout


def serialize(model_path, shard_size):
    """The reference's serialize() for a model path: {name: hex digest}."""
    model_path = pathlib.Path(model_path)
    ignored = [model_path / p for p in DEFAULT_IGNORES]
    paths = []
    for path in [model_path, *model_path.glob("**/*")]:
        if any(path.is_relative_to(i) for i in ignored):
            continue
        if path.is_symlink():
            raise ValueError("symlink %s" % path)
        if path.is_file():
            paths.append(path)
    items = {}
    for path in paths:
        rel = pathlib.PurePosixPath(path.relative_to(model_path))
        data = path.read_bytes()
        if not shard_size:
            items[str(rel)] = hashlib.sha256(data).hexdigest()
            continue
        for start in range(0, len(data), shard_size):
            end = min(start + shard_size, len(data))
            items["%s:%d:%d" % (rel, start, end)] = hashlib.sha256(data[start:end]).hexdigest()
    return items


def root_digest(items):
    h = hashlib.sha256()
    for name in sorted(items):
        h.update(bytes.fromhex(items[name]))
    return h.hexdigest()


def sign(model, key, out, shard_size, basename):
    items = serialize(model, shard_size)
    if basename:  # the Go signer since v1.1 and OMS 6.1.2 item 5, not the reference
        items = {k.replace(".", os.path.basename(model), 1): v for k, v in items.items()}
    serialization = {"method": "shards" if shard_size else "files", "hash_type": "sha256",
                     "allow_symlinks": False, "ignore_paths": DEFAULT_IGNORES}
    if shard_size:
        serialization["shard_size"] = shard_size
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": pathlib.Path(model).name,
                     "digest": {"sha256": root_digest(items)}}],
        "predicateType": "https://model_signing/signature/v1.0",
        "predicate": {
            "serialization": serialization,
            "resources": [{"algorithm": "sha256", "digest": items[n], "name": n}
                          for n in sorted(items)],
        },
    }
    payload = json.dumps(statement, indent=2).encode()
    with tempfile.NamedTemporaryFile() as f:
        f.write(pae(payload))
        f.flush()
        r = openssl("dgst", "-sha256", "-sign", key, f.name)
    if r.returncode != 0:
        sys.exit("openssl cannot sign: %s" % r.stderr.decode())
    bundle = {
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {
            "publicKey": {"hint": hashlib.sha256(pem_spki(key, True)).hexdigest()},
            "tlogEntries": []},
        "dsseEnvelope": {"payload": base64.b64encode(payload).decode(),
                         "payloadType": PAYLOAD_TYPE,
                         "signatures": [{"sig": base64.b64encode(r.stdout).decode(),
                                         "keyid": ""}]},
    }
    pathlib.Path(out).write_text(json.dumps(bundle, indent=2))


def verify(model, pub, bundle_path):
    b = json.loads(pathlib.Path(bundle_path).read_text())
    hint = b["verificationMaterial"]["publicKey"].get("hint")
    if hint and hint != hashlib.sha256(pem_spki(pub, False)).hexdigest():
        return "Key mismatch"
    env = b["dsseEnvelope"]
    payload = base64.b64decode(env["payload"])
    with tempfile.NamedTemporaryFile() as m, tempfile.NamedTemporaryFile() as s:
        m.write(pae(payload))
        m.flush()
        s.write(base64.b64decode(env["signatures"][0]["sig"]))
        s.flush()
        if openssl("dgst", "-sha256", "-verify", pub, "-signature", s.name,
                   m.name).returncode != 0:
            return "bad signature"
    st = json.loads(payload)
    if st["predicateType"] != "https://model_signing/signature/v1.0":
        return "Predicate type mismatch"
    if len(st["subject"]) != 1:
        return "Expected only one subject"
    expected = {}
    for r in st["predicate"]["resources"]:
        name = r["name"]
        if ":" in name and st["predicate"]["serialization"]["method"] == "shards":
            path, start, end = name.rsplit(":", 2)
            name = "%s:%s:%s" % (pathlib.PurePosixPath(path), start, end)
        else:
            name = str(pathlib.PurePosixPath(name))
        expected[name] = r["digest"]
    if root_digest(expected) != st["subject"][0]["digest"]["sha256"]:
        return "Manifest is inconsistent"
    ser = st["predicate"]["serialization"]
    actual = serialize(model, ser.get("shard_size") if ser["method"] == "shards" else None)
    if actual != expected:
        return "Signature mismatch: actual %s, expected %s" % (sorted(actual), sorted(expected))
    return None


def main():
    cmd = sys.argv[1]
    if cmd == "sign":
        args = sys.argv[2:]
        shard = int(args[args.index("--shard-size") + 1]) if "--shard-size" in args else None
        sign(args[0], args[1], args[2], shard, "--basename" in args)
    elif cmd == "verify":
        why = verify(*sys.argv[2:5])
        if why:
            print("reference rules refuse: " + why)
            sys.exit(1)
        print("reference rules accept")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
