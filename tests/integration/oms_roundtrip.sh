#!/bin/sh
# OMS round trips and negative cases through the real binary: keys, a CA,
# an intermediate and leaf certificates are made here with the openssl CLI
# (throwaway), models are built in a scratch folder, signed with
# `appliance image sign-model` and verified with `verify-model`; every
# negative case must fail with exit 1 and its own message.
set -u
: "${APPLIANCE_BIN:?}"
command -v openssl >/dev/null || { echo "openssl CLI needed" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 needed" >&2; exit 1; }
T=$(mktemp -d) || exit 1
trap 'rm -rf "$T"' EXIT
fail=0
app() { "$APPLIANCE_BIN" image "$@"; }

ok() { # ok NAME CMD...: the command must succeed
    name=$1
    shift
    if out=$("$@" 2>&1); then
        echo "ok   $name"
    else
        echo "FAIL $name (exit $?): $out"
        fail=1
    fi
}

refuse() { # refuse NAME EXPECTED-MESSAGE-PART CMD...: must exit 1 naming the reason
    name=$1
    want=$2
    shift 2
    out=$("$@" 2>&1)
    rc=$?
    if [ $rc -eq 1 ] && printf '%s' "$out" | grep -qF -- "$want"; then
        echo "ok   $name: $out"
    else
        echo "FAIL $name: exit $rc, wanted 1 and '$want', got: $out"
        fail=1
    fi
}

# ---- keys and certificates -------------------------------------------------
K=$T/keys
mkdir -p "$K"
for c in P-256 P-384 P-521; do
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:$c -out "$K/$c.key" 2>/dev/null
    openssl pkey -in "$K/$c.key" -pubout -out "$K/$c.pub"
done
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$K/other.key" 2>/dev/null
openssl pkey -in "$K/other.key" -pubout -out "$K/other.pub"
cat >"$K/ext.cnf" <<CNF
[ca]
basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign
[leaf]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=codeSigning
[tls]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
CNF
mkca() { # mkca NAME: self-signed root
    openssl req -x509 -new -key "$K/P-384.key" -subj "/CN=$1" -days 30 -out "$K/$1.pem" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
}
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$K/root.key" 2>/dev/null
openssl req -x509 -new -key "$K/root.key" -subj "/CN=test root CA" -days 30 -out "$K/root.pem" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$K/wrongroot.key" 2>/dev/null
openssl req -x509 -new -key "$K/wrongroot.key" -subj "/CN=test root CA" -days 30 \
    -out "$K/wrongroot.pem" -addext basicConstraints=critical,CA:TRUE 2>/dev/null
issue() { # issue KEY SUBJECT ISSUER-CERT ISSUER-KEY EXT DAYS OUT
    openssl req -new -key "$1" -subj "/CN=$2" -out "$K/tmp.csr" 2>/dev/null
    openssl x509 -req -in "$K/tmp.csr" -CA "$3" -CAkey "$4" -CAcreateserial -days "$6" \
        -extfile "$K/ext.cnf" -extensions "$5" -out "$7" 2>/dev/null
}
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$K/int.key" 2>/dev/null
issue "$K/int.key" "test intermediate" "$K/root.pem" "$K/root.key" ca 30 "$K/int.pem"
issue "$K/P-256.key" "model publisher" "$K/int.pem" "$K/int.key" leaf 30 "$K/leaf.pem"
issue "$K/P-256.key" "expired publisher" "$K/int.pem" "$K/int.key" leaf -1 "$K/expired.pem"
issue "$K/P-256.key" "tls server" "$K/int.pem" "$K/int.key" tls 30 "$K/tls.pem"
issue "$K/P-384.key" "model publisher p384" "$K/int.pem" "$K/int.key" leaf 30 "$K/leaf-p384.pem"
for f in root.pem int.pem leaf.pem leaf-p384.pem expired.pem tls.pem wrongroot.pem; do
    [ -s "$K/$f" ] || { echo "FAIL could not make $f with openssl"; exit 1; }
done

# ---- models ----------------------------------------------------------------
M=$T/models
mkdir -p "$M/nested/a/b/c" "$M/nested/.git" "$M/special/path with spaces" "$M/unicode"
printf 'config' >"$M/nested/config.json"
head -c 100000 /dev/urandom >"$M/nested/a/weights.bin"
printf 'deep' >"$M/nested/a/b/c/deep.bin"
: >"$M/nested/a/b/empty.bin"
printf 'gitstuff' >"$M/nested/.git/HEAD"
printf 'x' >"$M/nested/.gitattributes"
printf 'one' >"$M/special/file (copy).bin"
printf 'two' >"$M/special/path with spaces/it's \"quoted\" & [x].bin"
printf 'three' >"$M/special/colon:name.bin"
printf 'four' >"$M/unicode/模型.bin"
printf 'five' >"$M/unicode/Ünïcödé ü.bin"
printf 'six' >"$M/unicode/weights.bin"
head -c 300000 /dev/urandom >"$M/single.gguf"
mkdir -p "$M/ign/cache"
printf 'keep' >"$M/ign/model.bin"
printf 'skip' >"$M/ign/cache/tmp.bin"
printf 'skip' >"$M/ign/notes.txt"
mkdir -p "$M/empty"
: >"$M/empty/only-empty.bin"

B=$T/bundles
mkdir -p "$B"

# ---- round trips: key method, three curves, several shapes ------------------
for c in P-256 P-384 P-521; do
    for m in nested special unicode single.gguf; do
        ok "key $c sign $m" app sign-model --method key --model-path "$M/$m" \
            --output-bundle "$B/$m.$c.sig" --private-key "$K/$c.key"
        ok "key $c verify $m" app verify-model --method key --model-path "$M/$m" \
            --bundle "$B/$m.$c.sig" --public-key "$K/$c.pub"
    done
done
ok "key sign empty file only" app sign-model --method key --model-path "$M/empty" \
    --output-bundle "$B/empty.sig" --private-key "$K/P-256.key"
ok "key verify empty file only" app verify-model --method key --model-path "$M/empty" \
    --bundle "$B/empty.sig" --public-key "$K/P-256.pub"

# Bundle inside the model folder: excluded from signing and verifying.
ok "sign with bundle inside model" app sign-model --method key --model-path "$M/nested" \
    --output-bundle "$M/nested/model.sig" --private-key "$K/P-256.key"
ok "verify with bundle inside model" app verify-model --method key --model-path "$M/nested" \
    --bundle "$M/nested/model.sig" --public-key "$K/P-256.pub"
rm -f "$M/nested/model.sig"

# Ignore paths (absolute, as the conformance suite passes them).
ok "sign with ignore paths" app sign-model --method key --model-path "$M/ign" \
    --output-bundle "$B/ign.sig" --private-key "$K/P-256.key" \
    --ignore-paths "$M/ign/cache" --ignore-paths "$M/ign/notes.txt"
refuse "sign refuses glob ignore paths" "holds a glob character" app sign-model --method key \
    --model-path "$M/ign" --output-bundle "$B/glob.sig" --private-key "$K/P-256.key" \
    --ignore-paths "$M/ign/*.txt"
ok "verify with ignore paths recorded in the bundle" app verify-model --method key \
    --model-path "$M/ign" --bundle "$B/ign.sig" --public-key "$K/P-256.pub"
printf 'changed' >"$M/ign/cache/tmp.bin"
ok "ignored file may change" app verify-model --method key --model-path "$M/ign" \
    --bundle "$B/ign.sig" --public-key "$K/P-256.pub"
if app inspect "$B/ign.sig" | grep -qE '^  [0-9a-f]{64}  (notes.txt|cache/tmp.bin)$'; then
    echo "FAIL ignored file listed in bundle"
    fail=1
fi

# Shard serialization.
ok "sign shards" app sign-model --method key --model-path "$M/nested" \
    --output-bundle "$B/shards.sig" --private-key "$K/P-384.key" --shard-size 30000
ok "verify shards" app verify-model --method key --model-path "$M/nested" \
    --bundle "$B/shards.sig" --public-key "$K/P-384.pub"
app inspect "$B/shards.sig" | grep -q 'a/weights.bin:90000:100000$' ||
    { echo "FAIL shard names"; fail=1; }

# ---- round trips: certificate method ----------------------------------------
ok "cert sign" app sign-model --method certificate --model-path "$M/nested" \
    --output-bundle "$B/cert.sig" --private-key "$K/P-256.key" --signing-cert "$K/leaf.pem" \
    --cert-chain "$K/int.pem"
ok "cert verify against root" app verify-model --method certificate --model-path "$M/nested" \
    --bundle "$B/cert.sig" --cert-chain "$K/root.pem"
ok "cert sign single file" app sign-model --method certificate --model-path "$M/single.gguf" \
    --output-bundle "$B/cert1.sig" --private-key "$K/P-256.key" --signing-cert "$K/leaf.pem" \
    --cert-chain "$K/int.pem" --cert-chain "$K/root.pem"
ok "cert verify single file" app verify-model --method certificate \
    --model-path "$M/single.gguf" --bundle "$B/cert1.sig" --cert-chain "$K/root.pem"
# The other shapes, certificate method: special and unicode names, a model
# of one empty file, ignore paths.
for m in special unicode empty ign; do
    ign=""
    [ "$m" = ign ] && ign="--ignore-paths $M/ign/cache"
    ok "cert sign $m" app sign-model --method certificate --model-path "$M/$m" \
        --output-bundle "$B/cert-$m.sig" --private-key "$K/P-384.key" \
        --signing-cert "$K/leaf-p384.pem" --cert-chain "$K/int.pem" $ign
    ok "cert verify $m" app verify-model --method certificate --model-path "$M/$m" \
        --bundle "$B/cert-$m.sig" --cert-chain "$K/root.pem" $ign
done
cp "$M/single.gguf" "$T/renamed.gguf"
ok "renamed single-file model verifies" app verify-model --method key \
    --model-path "$T/renamed.gguf" --bundle "$B/single.gguf.P-256.sig" --public-key "$K/P-256.pub"
ok "inspect --json" app inspect --json "$B/cert.sig"

# ---- negative cases ---------------------------------------------------------
W=$T/work
cp -R "$M/nested" "$W"
vk() { app verify-model --method key --model-path "$W" --bundle "$B/nested.P-256.sig" \
    --public-key "$K/P-256.pub" "$@"; }
ok "pristine copy verifies" vk
printf 'tampered' >"$W/a/b/c/deep.bin"
refuse "tampered content" "file 'a/b/c/deep.bin' does not match the bundle" vk
printf 'deep' >"$W/a/b/c/deep.bin"
printf 'new' >"$W/a/extra.bin"
refuse "extra file" "file 'a/extra.bin' is in the model but not signed" vk
ok "extra file with --ignore-unsigned-files" vk --ignore-unsigned-files
ok "extra file with --ignore-paths" vk --ignore-paths "$W/a/extra.bin"
rm "$W/a/extra.bin"
mv "$W/config.json" "$T/config.json"
refuse "missing file" "file 'config.json' is signed in the bundle but missing" vk
refuse "missing file even with --ignore-unsigned-files" "missing" vk --ignore-unsigned-files
mv "$T/config.json" "$W/config.json"
ln -s config.json "$W/link.json"
refuse "symlink refused" "symbolic link 'link.json'" vk
rm "$W/link.json"
ok "restored copy verifies" vk

refuse "wrong key" "wrong key" app verify-model --method key --model-path "$W" \
    --bundle "$B/nested.P-256.sig" --public-key "$K/other.pub"
refuse "wrong curve key" "wrong key" app verify-model --method key --model-path "$W" \
    --bundle "$B/nested.P-256.sig" --public-key "$K/P-384.pub"
refuse "wrong CA" "untrusted certificate" app verify-model --method certificate \
    --model-path "$M/nested" --bundle "$B/cert.sig" --cert-chain "$K/wrongroot.pem"
refuse "method mismatch" "uses the certificate method" app verify-model --method key \
    --model-path "$M/nested" --bundle "$B/cert.sig" --public-key "$K/P-256.pub"
ok "expired cert signs" app sign-model --method certificate --model-path "$M/nested" \
    --output-bundle "$B/expired.sig" --private-key "$K/P-256.key" \
    --signing-cert "$K/expired.pem" --cert-chain "$K/int.pem"
refuse "expired certificate" "certificate expired" app verify-model --method certificate \
    --model-path "$M/nested" --bundle "$B/expired.sig" --cert-chain "$K/root.pem"
ok "tls cert signs" app sign-model --method certificate --model-path "$M/nested" \
    --output-bundle "$B/tls.sig" --private-key "$K/P-256.key" \
    --signing-cert "$K/tls.pem" --cert-chain "$K/int.pem"
refuse "certificate without codeSigning" "lacks codeSigning" app verify-model \
    --method certificate --model-path "$M/nested" --bundle "$B/tls.sig" --cert-chain "$K/root.pem"
refuse "signing cert for another key" "does not match private key" app sign-model \
    --method certificate --model-path "$M/nested" --output-bundle "$B/x.sig" \
    --private-key "$K/other.key" --signing-cert "$K/leaf.pem"

# Edits of the bundle JSON (python3 only edits text, the appliance judges).
edit() { # edit IN OUT PYTHON-STATEMENTS (b = bundle dict)
    python3 - "$1" "$2" "$3" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))
exec(sys.argv[3])
open(sys.argv[2], "w").write(json.dumps(b))
PY
}
# resign IN OUT KEY PYTHON-STATEMENTS (s = statement dict): changes the
# statement and signs it again with the openssl CLI over the DSSE PAE.
resign() {
    python3 - "$1" "$2" "$3" "$4" <<'PY'
import base64, json, subprocess, sys
b = json.load(open(sys.argv[1]))
s = json.loads(base64.b64decode(b["dsseEnvelope"]["payload"]))
exec(sys.argv[4])
payload = json.dumps(s).encode()
ptype = b"application/vnd.in-toto+json"
pae = b"DSSEv1 %d %s %d %s" % (len(ptype), ptype, len(payload), payload)
sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", sys.argv[3]], input=pae,
                     capture_output=True, check=True).stdout
b["dsseEnvelope"]["payload"] = base64.b64encode(payload).decode()
b["dsseEnvelope"]["signatures"] = [{"sig": base64.b64encode(sig).decode(), "keyid": ""}]
open(sys.argv[2], "w").write(json.dumps(b))
PY
}
vb() { app verify-model --method key --model-path "$M/nested" --bundle "$1" \
    --public-key "$K/P-256.pub"; }
GOOD=$B/nested.P-256.sig
resign "$GOOD" "$B/resigned.sig" "$K/P-256.key" "pass"
ok "re-signed unchanged statement verifies (test helper is sound)" vb "$B/resigned.sig"
head -c 200 "$GOOD" >"$B/truncated.sig"
refuse "truncated bundle" "malformed bundle: not valid JSON" vb "$B/truncated.sig"
: >"$B/emptyfile.sig"
refuse "empty bundle file" "malformed bundle" vb "$B/emptyfile.sig"
edit "$GOOD" "$B/badsig.sig" "
import base64
s = bytearray(base64.b64decode(b['dsseEnvelope']['signatures'][0]['sig']))
s[-3] ^= 1
b['dsseEnvelope']['signatures'][0]['sig'] = base64.b64encode(bytes(s)).decode()"
refuse "corrupted signature" "bad signature" vb "$B/badsig.sig"
edit "$GOOD" "$B/badpayload.sig" "
import base64
p = base64.b64decode(b['dsseEnvelope']['payload']).replace(b'config.json', b'config.jsoN')
b['dsseEnvelope']['payload'] = base64.b64encode(p).decode()"
refuse "corrupted payload" "bad signature" vb "$B/badpayload.sig"
edit "$GOOD" "$B/notb64.sig" "b['dsseEnvelope']['payload'] = '!!!'"
refuse "payload not base64" "dsseEnvelope.payload is not base64" vb "$B/notb64.sig"
edit "$GOOD" "$B/media.sig" "b['mediaType'] = 'application/vnd.dev.sigstore.bundle.v0.1+json'"
refuse "wrong mediaType" "unsupported bundle mediaType" vb "$B/media.sig"
edit "$GOOD" "$B/ptype.sig" "b['dsseEnvelope']['payloadType'] = 'application/json'"
refuse "wrong payloadType" "dsseEnvelope.payloadType is 'application/json'" vb "$B/ptype.sig"
edit "$GOOD" "$B/nosigs.sig" "b['dsseEnvelope']['signatures'] = []"
refuse "no signatures" "dsseEnvelope.signatures is missing or empty" vb "$B/nosigs.sig"
edit "$GOOD" "$B/nomat.sig" "del b['verificationMaterial']"
refuse "no verificationMaterial" "verificationMaterial is missing" vb "$B/nomat.sig"
edit "$GOOD" "$B/sigstore.sig" "
b['verificationMaterial'] = {'certificate': {'rawBytes': 'AAAA'}, 'tlogEntries': [{}]}"
refuse "sigstore method" "cannot be verified offline" vb "$B/sigstore.sig"
edit "$GOOD" "$B/sigstore-notlog.sig" "b['verificationMaterial'] = {'certificate': {'rawBytes': 'AAAA'}}"
refuse "sigstore without tlogEntries" "needs at least one verificationMaterial.tlogEntries" vb \
    "$B/sigstore-notlog.sig"
resign "$GOOD" "$B/pred.sig" "$K/P-256.key" "s['predicateType'] = 'https://model_signing/Digests/v0.1'"
refuse "wrong predicateType" "predicateType is 'https://model_signing/Digests/v0.1'" vb "$B/pred.sig"
resign "$GOOD" "$B/stype.sig" "$K/P-256.key" "s['_type'] = 'https://in-toto.io/Statement/v0.1'"
refuse "wrong statement _type" "statement _type is" vb "$B/stype.sig"
resign "$GOOD" "$B/nores.sig" "$K/P-256.key" "s['predicate']['resources'] = []"
refuse "empty resources" "lists no resources" vb "$B/nores.sig"
resign "$GOOD" "$B/root.sig" "$K/P-256.key" "s['subject'][0]['digest']['sha256'] = '0' * 64"
refuse "subject digest inconsistent" "does not match its resources" vb "$B/root.sig"
resign "$GOOD" "$B/escape.sig" "$K/P-256.key" "
r = s['predicate']['resources'][0]; r['name'] = '../outside'
import hashlib
s['subject'][0]['digest']['sha256'] = hashlib.sha256(b''.join(bytes.fromhex(x['digest']) for x in s['predicate']['resources'])).hexdigest()"
refuse "resource path escaping the model" "is not a relative path inside the model" vb "$B/escape.sig"
resign "$GOOD" "$B/blake3.sig" "$K/P-256.key" "s['predicate']['serialization']['hash_type'] = 'blake3'"
refuse "unsupported hash type" "unsupported predicate.serialization.hash_type 'blake3'" vb "$B/blake3.sig"
refuse "bundle for another model" "signed in the bundle but missing from the model" app verify-model --method key \
    --model-path "$M/special" --bundle "$B/unicode.P-256.sig" --public-key "$K/P-256.pub"
refuse "single-file bundle for another file" "does not match the bundle" app verify-model \
    --method key --model-path "$M/nested/a/weights.bin" --bundle "$B/single.gguf.P-256.sig" \
    --public-key "$K/P-256.pub"

# Symbolic links: refused when signing, followed only when the signed
# serialization says allow_symlinks (a bundle of another signer).
mkdir -p "$T/ln"
printf 'target' >"$T/ln/a.bin"
ln -s a.bin "$T/ln/link.bin"
refuse "sign refuses a symlink" "symbolic link 'link.bin'" app sign-model --method key \
    --model-path "$T/ln" --output-bundle "$B/ln.sig" --private-key "$K/P-256.key"
ok "sign with the symlink ignored" app sign-model --method key --model-path "$T/ln" \
    --output-bundle "$B/ln.sig" --private-key "$K/P-256.key" --ignore-paths "$T/ln/link.bin"
resign "$B/ln.sig" "$B/ln-follow.sig" "$K/P-256.key" "
import hashlib
r = dict(s['predicate']['resources'][0]); r['name'] = 'link.bin'
s['predicate']['resources'].append(r)
s['predicate']['serialization']['allow_symlinks'] = True
s['predicate']['serialization']['ignore_paths'] = []
s['subject'][0]['digest']['sha256'] = hashlib.sha256(b''.join(bytes.fromhex(x['digest']) for x in s['predicate']['resources'])).hexdigest()"
ok "allow_symlinks bundle follows the link" app verify-model --method key --model-path "$T/ln" \
    --bundle "$B/ln-follow.sig" --public-key "$K/P-256.pub"
printf 'other' >"$T/ln/b.bin"
ln -sf b.bin "$T/ln/link.bin"
refuse "allow_symlinks bundle checks the link target" "file 'link.bin' does not match" \
    app verify-model --method key --model-path "$T/ln" --bundle "$B/ln-follow.sig" \
    --public-key "$K/P-256.pub" --ignore-paths "$T/ln/b.bin"

# File names that are not UTF-8 cannot be signed (the bundle is JSON) and
# are extra files to a verifier.
mkdir -p "$T/bad"
printf 'x' >"$T/bad/ok.bin"
ok "sign clean folder" app sign-model --method key --model-path "$T/bad" \
    --output-bundle "$B/bad.sig" --private-key "$K/P-256.key"
printf 'y' >"$T/bad/$(printf 'bad\377name')"
refuse "sign refuses non-UTF-8 name" "is not valid UTF-8" app sign-model --method key \
    --model-path "$T/bad" --output-bundle "$B/bad2.sig" --private-key "$K/P-256.key"
refuse "non-UTF-8 name is an extra file" "is in the model but not signed" app verify-model \
    --method key --model-path "$T/bad" --bundle "$B/bad.sig" --public-key "$K/P-256.pub"

# ---- usage errors exit 2 ------------------------------------------------------
usage() {
    name=$1
    shift
    "$@" >/dev/null 2>&1
    rc=$?
    if [ $rc -eq 2 ]; then echo "ok   usage: $name"; else echo "FAIL usage: $name exit $rc"; fail=1; fi
}
usage "no subcommand" app
usage "unknown flag" app verify-model --bogus
usage "missing bundle" app verify-model --method key --model-path "$W" --public-key "$K/P-256.pub"
usage "bad method" app verify-model --method pgp --model-path "$W" --bundle x --public-key y
usage "key method without key" app verify-model --method key --model-path "$W" --bundle x
usage "inspect without bundle" app inspect
"$APPLIANCE_BIN" image verify-model --help >/dev/null || { echo "FAIL --help"; fail=1; }
exit $fail
