/* OMS bundle JSON: strict parsing of the Sigstore bundle, the DSSE envelope
 * and the in-toto statement, and building them when signing. No crypto and
 * no file system here, so the fuzz target can drive all of it. */
#include "oms_internal.h"

#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* The two spellings of the Sigstore bundle v0.3 media type. */
static const char *const media_types[] = {
    OMS_BUNDLE_MEDIA,
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
};

static const char *get_string(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Requires obj[key] to be a string; reports "<where>.<key> is missing or not
 * a string" otherwise. */
static const char *need_string(json_t *obj, const char *where, const char *key, char *err,
                               size_t errlen)
{
    const char *s = get_string(obj, key);
    if (!s)
        oms_err(err, errlen, "malformed bundle: %s.%s is missing or not a string", where, key);
    return s;
}

/* Decodes a lowercase or uppercase hex digest of exactly want bytes. */
static int parse_hex(const char *hex, unsigned char *out, size_t want)
{
    size_t n = 0;
    const char *end = NULL;
    if (strlen(hex) != 2 * want)
        return -1;
    if (sodium_hex2bin(out, want, hex, strlen(hex), NULL, &n, &end) != 0 || n != want || *end != 0)
        return -1;
    return 0;
}

static size_t md_size_of(const char *hash_type)
{
    if (strcmp(hash_type, "sha256") == 0)
        return 32;
    if (strcmp(hash_type, "blake2b") == 0)
        return 64;
    return 0;
}

int oms_parse_shard_name(oms_resource *r)
{
    /* Filenames may hold ':', so the range is the last two components. */
    char *last = strrchr(r->name, ':');
    char *mid, *endp;
    unsigned long long a, b;
    if (!last || last == r->name)
        return -1;
    mid = last - 1;
    while (mid > r->name && *mid != ':')
        mid--;
    if (*mid != ':' || mid == r->name)
        return -1;
    if (mid[1] < '0' || mid[1] > '9' || last[1] < '0' || last[1] > '9')
        return -1;
    errno = 0;
    a = strtoull(mid + 1, &endp, 10);
    if (errno || endp != last)
        return -1;
    b = strtoull(last + 1, &endp, 10);
    if (errno || *endp != 0 || b <= a)
        return -1;
    r->path = strndup(r->name, (size_t)(mid - r->name));
    if (!r->path)
        return -1;
    r->start = a;
    r->end = b;
    return 0;
}

void oms_manifest_free(oms_manifest *m)
{
    free(m->model_name);
    for (size_t i = 0; i < m->n_ignore_paths; i++)
        free(m->ignore_paths[i]);
    free(m->ignore_paths);
    for (size_t i = 0; i < m->n_resources; i++) {
        free(m->resources[i].name);
        free(m->resources[i].path);
    }
    free(m->resources);
    memset(m, 0, sizeof *m);
}

static int parse_serialization(json_t *ser, oms_manifest *m, char *err, size_t errlen)
{
    const char *where = "predicate.serialization";
    const char *method, *hash_type;
    json_t *sym, *ign, *shard;
    if (!json_is_object(ser))
        return oms_err(err, errlen, "malformed statement: %s is missing or not an object", where);
    if (!(method = need_string(ser, where, "method", err, errlen)) ||
        !(hash_type = need_string(ser, where, "hash_type", err, errlen)))
        return -1;
    if (strcmp(method, "files") != 0 && strcmp(method, "shards") != 0)
        return oms_err(err, errlen, "unsupported %s.method '%s' (files or shards)", where, method);
    if (!md_size_of(hash_type))
        return oms_err(err, errlen, "unsupported %s.hash_type '%s' (sha256 or blake2b)", where,
                       hash_type);
    snprintf(m->hash_type, sizeof m->hash_type, "%s", hash_type);
    m->shards = strcmp(method, "shards") == 0;
    sym = json_object_get(ser, "allow_symlinks");
    if (!json_is_boolean(sym))
        return oms_err(err, errlen,
                       "malformed statement: %s.allow_symlinks is missing or not a boolean", where);
    m->allow_symlinks = json_is_true(sym);
    shard = json_object_get(ser, "shard_size");
    if (m->shards) {
        if (!json_is_integer(shard) || json_integer_value(shard) <= 0)
            return oms_err(err, errlen,
                           "malformed statement: %s.shard_size must be a positive integer", where);
        m->shard_size = (uint64_t)json_integer_value(shard);
    }
    ign = json_object_get(ser, "ignore_paths");
    if (ign) {
        size_t i;
        json_t *v;
        if (!json_is_array(ign))
            return oms_err(err, errlen, "malformed statement: %s.ignore_paths is not an array",
                           where);
        m->ignore_paths = calloc(json_array_size(ign) + 1, sizeof *m->ignore_paths);
        if (!m->ignore_paths)
            return oms_err(err, errlen, "out of memory");
        json_array_foreach(ign, i, v)
        {
            if (!json_is_string(v))
                return oms_err(err, errlen,
                               "malformed statement: %s.ignore_paths[%zu] is not a string", where,
                               i);
            if (!(m->ignore_paths[m->n_ignore_paths] = strdup(json_string_value(v))))
                return oms_err(err, errlen, "out of memory");
            m->n_ignore_paths++;
        }
    }
    return 0;
}

static int parse_resource(json_t *rd, size_t i, oms_manifest *m, char *err, size_t errlen)
{
    oms_resource *r = &m->resources[i];
    const char *name, *digest, *alg;
    size_t dlen = md_size_of(m->hash_type);
    if (!json_is_object(rd))
        return oms_err(err, errlen,
                       "malformed statement: predicate.resources[%zu] is not an object", i);
    name = get_string(rd, "name");
    digest = get_string(rd, "digest");
    alg = get_string(rd, "algorithm");
    if (!name || !digest || !alg)
        return oms_err(err, errlen,
                       "malformed statement: predicate.resources[%zu] needs string name, digest "
                       "and algorithm",
                       i);
    if (strcmp(alg, m->hash_type) != 0)
        return oms_err(err, errlen,
                       "malformed statement: predicate.resources[%zu].algorithm '%s' differs from "
                       "hash_type '%s'",
                       i, alg, m->hash_type);
    if (parse_hex(digest, r->digest, dlen) != 0)
        return oms_err(err, errlen,
                       "malformed statement: predicate.resources[%zu].digest is not %zu hex bytes",
                       i, dlen);
    r->digest_len = dlen;
    if (strcmp(name, ".") == 0 && !m->shards) {
        /* Historical single-file bundles name the one file ".". */
        r->name = strdup(".");
        r->path = strdup(".");
        if (!r->name || !r->path)
            return oms_err(err, errlen, "out of memory");
        return 0;
    }
    if (m->shards) {
        if (!(r->name = strdup(name)))
            return oms_err(err, errlen, "out of memory");
        if (oms_parse_shard_name(r) != 0 || (r->end - r->start) > m->shard_size)
            return oms_err(err, errlen,
                           "malformed statement: predicate.resources[%zu].name '%s' is not "
                           "'path:start:end' within shard_size",
                           i, name);
        char *canon = strcmp(r->path, ".") == 0 ? strdup(".") : oms_canonical_relpath(r->path);
        if (!canon)
            return oms_err(err, errlen,
                           "malformed statement: predicate.resources[%zu].name '%s' is not a "
                           "relative path inside the model",
                           i, name);
        free(r->path);
        r->path = canon;
        return 0;
    }
    if (!(r->name = oms_canonical_relpath(name)))
        return oms_err(err, errlen,
                       "malformed statement: predicate.resources[%zu].name '%s' is not a relative "
                       "path inside the model",
                       i, name);
    if (!(r->path = strdup(r->name)))
        return oms_err(err, errlen, "out of memory");
    return 0;
}

static int cmp_resource_ptr(const void *a, const void *b)
{
    const oms_resource *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

/* Rejects two resources with one name (after canonicalisation). */
static int check_unique(const oms_manifest *m, char *err, size_t errlen)
{
    const oms_resource **v = malloc(m->n_resources * sizeof *v);
    int rc = 0;
    if (!v)
        return oms_err(err, errlen, "out of memory");
    for (size_t i = 0; i < m->n_resources; i++)
        v[i] = &m->resources[i];
    qsort(v, m->n_resources, sizeof *v, cmp_resource_ptr);
    for (size_t i = 1; i < m->n_resources && rc == 0; i++)
        if (strcmp(v[i - 1]->name, v[i]->name) == 0)
            rc = oms_err(err, errlen, "malformed statement: resource '%s' is listed twice",
                         v[i]->name);
    free(v);
    return rc;
}

int oms_root_digest(const oms_manifest *m, char hex[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;
    hex[0] = 0;
    for (size_t i = 0; ok && i < m->n_resources; i++)
        ok = EVP_DigestUpdate(ctx, m->resources[i].digest, m->resources[i].digest_len) == 1;
    ok = ok && EVP_DigestFinal_ex(ctx, md, &mdlen) == 1;
    EVP_MD_CTX_free(ctx);
    if (ok)
        oms_hex(md, 32, hex);
    return ok ? 0 : -1;
}

static int parse_subject(json_t *st, oms_manifest *m, char *err, size_t errlen)
{
    json_t *subj = json_object_get(st, "subject");
    json_t *s0, *dig;
    const char *name, *sha;
    unsigned char raw[32];
    if (!json_is_array(subj) || json_array_size(subj) != 1)
        return oms_err(err, errlen, "malformed statement: subject must be an array of one entry");
    s0 = json_array_get(subj, 0);
    name = json_is_object(s0) ? get_string(s0, "name") : NULL;
    dig = json_is_object(s0) ? json_object_get(s0, "digest") : NULL;
    sha = json_is_object(dig) ? get_string(dig, "sha256") : NULL;
    if (!name || !*name)
        return oms_err(err, errlen, "malformed statement: subject[0].name is missing or empty");
    if (!sha || parse_hex(sha, raw, 32) != 0)
        return oms_err(err, errlen,
                       "malformed statement: subject[0].digest.sha256 is missing or not 32 hex "
                       "bytes");
    if (!(m->model_name = strdup(name)))
        return oms_err(err, errlen, "out of memory");
    oms_hex(raw, 32, m->root_digest);
    return 0;
}

static int parse_statement_json(json_t *st, oms_manifest *m, char *err, size_t errlen)
{
    const char *type, *ptype;
    json_t *pred, *res, *rd;
    size_t i;
    char root[65];
    if (!json_is_object(st))
        return oms_err(err, errlen, "malformed statement: the DSSE payload is not a JSON object");
    if (!(type = need_string(st, "statement", "_type", err, errlen)))
        return -1;
    if (strcmp(type, OMS_STATEMENT_TYPE) != 0)
        return oms_err(err, errlen, "statement _type is '%s', expected '%s'", type,
                       OMS_STATEMENT_TYPE);
    if (!(ptype = need_string(st, "statement", "predicateType", err, errlen)))
        return -1;
    if (strcmp(ptype, OMS_PREDICATE_TYPE) != 0)
        return oms_err(err, errlen, "statement predicateType is '%s', expected '%s'", ptype,
                       OMS_PREDICATE_TYPE);
    if (parse_subject(st, m, err, errlen) != 0)
        return -1;
    pred = json_object_get(st, "predicate");
    if (!json_is_object(pred))
        return oms_err(err, errlen, "malformed statement: predicate is missing or not an object");
    if (parse_serialization(json_object_get(pred, "serialization"), m, err, errlen) != 0)
        return -1;
    res = json_object_get(pred, "resources");
    if (!json_is_array(res))
        return oms_err(err, errlen,
                       "malformed statement: predicate.resources is missing or not an array");
    if (json_array_size(res) == 0)
        return oms_err(err, errlen,
                       "statement lists no resources: an empty model cannot be verified");
    m->resources = calloc(json_array_size(res), sizeof *m->resources);
    if (!m->resources)
        return oms_err(err, errlen, "out of memory");
    json_array_foreach(res, i, rd)
    {
        m->n_resources = i + 1;
        if (parse_resource(rd, i, m, err, errlen) != 0)
            return -1;
    }
    if (check_unique(m, err, errlen) != 0)
        return -1;
    if (oms_root_digest(m, root) != 0 || strcmp(root, m->root_digest) != 0)
        return oms_err(err, errlen,
                       "statement subject digest %s does not match its resources (they hash to %s)",
                       m->root_digest, root);
    return 0;
}

int oms_statement_parse(const unsigned char *payload, size_t len, oms_manifest *m, char *err,
                        size_t errlen)
{
    json_error_t jerr;
    json_t *st = json_loadb((const char *)payload, len, JSON_REJECT_DUPLICATES, &jerr);
    int rc;
    memset(m, 0, sizeof *m);
    if (!st)
        return oms_err(err, errlen, "malformed statement: the DSSE payload is not JSON (%s)",
                       jerr.text);
    rc = parse_statement_json(st, m, err, errlen);
    json_decref(st);
    return rc;
}

void oms_bundle_free(oms_bundle *b)
{
    if (!b)
        return;
    free(b->key_hint);
    free(b->key_raw);
    for (size_t i = 0; i < b->n_certs; i++)
        free(b->certs[i]);
    free(b->certs);
    free(b->cert_lens);
    free(b->payload);
    for (size_t i = 0; i < b->n_sigs; i++)
        free(b->sigs[i]);
    free(b->sigs);
    free(b->sig_lens);
    oms_manifest_free(&b->manifest);
    memset(b, 0, sizeof *b);
}

static int parse_public_key(json_t *pk, oms_bundle *b, char *err, size_t errlen)
{
    const char *hint = get_string(pk, "hint");
    const char *raw = get_string(pk, "rawBytes");
    b->method = OMS_METHOD_KEY;
    if (!json_is_object(pk))
        return oms_err(err, errlen,
                       "malformed bundle: verificationMaterial.publicKey is not an object");
    if (!hint && !raw)
        return oms_err(err, errlen,
                       "malformed bundle: verificationMaterial.publicKey has neither hint nor "
                       "rawBytes");
    if (hint && !(b->key_hint = strdup(hint)))
        return oms_err(err, errlen, "out of memory");
    if (raw && !(b->key_raw = oms_b64_decode(raw, &b->key_raw_len)))
        return oms_err(err, errlen,
                       "malformed bundle: verificationMaterial.publicKey.rawBytes is not base64");
    return 0;
}

static int parse_cert_chain(json_t *chain, oms_bundle *b, char *err, size_t errlen)
{
    json_t *certs = json_is_object(chain) ? json_object_get(chain, "certificates") : NULL;
    json_t *c;
    size_t i, n;
    b->method = OMS_METHOD_CERTIFICATE;
    if (!json_is_array(certs) || (n = json_array_size(certs)) == 0)
        return oms_err(err, errlen,
                       "malformed bundle: verificationMaterial.x509CertificateChain.certificates "
                       "is missing or empty");
    b->certs = calloc(n, sizeof *b->certs);
    b->cert_lens = calloc(n, sizeof *b->cert_lens);
    if (!b->certs || !b->cert_lens)
        return oms_err(err, errlen, "out of memory");
    json_array_foreach(certs, i, c)
    {
        const char *raw = json_is_object(c) ? get_string(c, "rawBytes") : NULL;
        if (!raw || !(b->certs[i] = oms_b64_decode(raw, &b->cert_lens[i])) ||
            b->cert_lens[i] == 0) {
            b->n_certs = i + 1;
            return oms_err(err, errlen,
                           "malformed bundle: "
                           "verificationMaterial.x509CertificateChain.certificates[%zu].rawBytes "
                           "is not base64",
                           i);
        }
        b->n_certs = i + 1;
    }
    return 0;
}

static int parse_material(json_t *vm, oms_bundle *b, char *err, size_t errlen)
{
    json_t *pk, *chain, *tlog;
    if (!json_is_object(vm))
        return oms_err(err, errlen,
                       "malformed bundle: verificationMaterial is missing or not an object");
    tlog = json_object_get(vm, "tlogEntries");
    if (tlog && !json_is_array(tlog))
        return oms_err(err, errlen,
                       "malformed bundle: verificationMaterial.tlogEntries is not an array");
    pk = json_object_get(vm, "publicKey");
    chain = json_object_get(vm, "x509CertificateChain");
    if ((pk != NULL) + (chain != NULL) + (json_object_get(vm, "certificate") != NULL) != 1)
        return oms_err(err, errlen,
                       "malformed bundle: verificationMaterial must hold exactly one of publicKey, "
                       "x509CertificateChain or certificate");
    if (pk)
        return parse_public_key(pk, b, err, errlen);
    if (chain)
        return parse_cert_chain(chain, b, err, errlen);
    /* Sigstore keyless: parsed only far enough to be named and refused. */
    b->method = OMS_METHOD_SIGSTORE;
    if (!json_is_object(json_object_get(vm, "certificate")) ||
        !get_string(json_object_get(vm, "certificate"), "rawBytes"))
        return oms_err(err, errlen,
                       "malformed bundle: verificationMaterial.certificate.rawBytes is missing");
    if (!json_is_array(tlog) || json_array_size(tlog) == 0)
        return oms_err(err, errlen,
                       "malformed bundle: the sigstore method needs at least one "
                       "verificationMaterial.tlogEntries entry");
    return 0;
}

static int parse_signatures(json_t *sigs, oms_bundle *b, char *err, size_t errlen)
{
    json_t *s;
    size_t i, n;
    if (!json_is_array(sigs) || (n = json_array_size(sigs)) == 0)
        return oms_err(err, errlen,
                       "malformed bundle: dsseEnvelope.signatures is missing or empty");
    b->sigs = calloc(n, sizeof *b->sigs);
    b->sig_lens = calloc(n, sizeof *b->sig_lens);
    if (!b->sigs || !b->sig_lens)
        return oms_err(err, errlen, "out of memory");
    json_array_foreach(sigs, i, s)
    {
        const char *sig = json_is_object(s) ? get_string(s, "sig") : NULL;
        json_t *keyid = json_is_object(s) ? json_object_get(s, "keyid") : NULL;
        /* keyid is optional: absent, "", null or any string are all fine. */
        if (keyid && !json_is_string(keyid) && !json_is_null(keyid))
            return oms_err(err, errlen,
                           "malformed bundle: dsseEnvelope.signatures[%zu].keyid is not a string",
                           i);
        b->n_sigs = i + 1;
        if (!sig || !(b->sigs[i] = oms_b64_decode(sig, &b->sig_lens[i])) || b->sig_lens[i] == 0)
            return oms_err(err, errlen,
                           "malformed bundle: dsseEnvelope.signatures[%zu].sig is missing or not "
                           "base64",
                           i);
    }
    return 0;
}

static int parse_envelope(json_t *env, oms_bundle *b, char *err, size_t errlen)
{
    const char *ptype, *payload;
    if (!json_is_object(env))
        return oms_err(err, errlen, "malformed bundle: dsseEnvelope is missing or not an object");
    if (!(ptype = need_string(env, "dsseEnvelope", "payloadType", err, errlen)))
        return -1;
    if (strcmp(ptype, OMS_PAYLOAD_TYPE) != 0)
        return oms_err(err, errlen, "dsseEnvelope.payloadType is '%s', expected '%s'", ptype,
                       OMS_PAYLOAD_TYPE);
    if (!(payload = need_string(env, "dsseEnvelope", "payload", err, errlen)))
        return -1;
    if (!(b->payload = oms_b64_decode(payload, &b->payload_len)))
        return oms_err(err, errlen, "malformed bundle: dsseEnvelope.payload is not base64");
    return parse_signatures(json_object_get(env, "signatures"), b, err, errlen);
}

static int parse_bundle_json(json_t *root, oms_bundle *b, char *err, size_t errlen)
{
    const char *media;
    size_t i;
    if (!json_is_object(root))
        return oms_err(err, errlen, "malformed bundle: not a JSON object");
    if (!(media = need_string(root, "bundle", "mediaType", err, errlen)))
        return -1;
    for (i = 0; i < sizeof media_types / sizeof media_types[0]; i++)
        if (strcmp(media, media_types[i]) == 0)
            break;
    if (i == sizeof media_types / sizeof media_types[0])
        return oms_err(err, errlen, "unsupported bundle mediaType '%s', expected '%s'", media,
                       OMS_BUNDLE_MEDIA);
    if (parse_material(json_object_get(root, "verificationMaterial"), b, err, errlen) != 0)
        return -1;
    if (!json_object_get(root, "dsseEnvelope") && json_object_get(root, "messageSignature"))
        return oms_err(err, errlen,
                       "bundle holds a messageSignature, not the DSSE envelope OMS requires");
    if (parse_envelope(json_object_get(root, "dsseEnvelope"), b, err, errlen) != 0)
        return -1;
    return oms_statement_parse(b->payload, b->payload_len, &b->manifest, err, errlen);
}

int oms_bundle_parse(const unsigned char *json, size_t len, oms_bundle *out, char *err,
                     size_t errlen)
{
    json_error_t jerr;
    json_t *root;
    int rc;
    memset(out, 0, sizeof *out);
    root = json_loadb((const char *)json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return oms_err(err, errlen, "malformed bundle: not valid JSON (line %d: %s)", jerr.line,
                       jerr.text);
    rc = parse_bundle_json(root, out, err, errlen);
    json_decref(root);
    if (rc != 0)
        oms_bundle_free(out);
    return rc;
}

/* ---------------------------------------------------------------- building */

static json_t *resources_json(const oms_manifest *m)
{
    json_t *arr = json_array();
    char hex[2 * OMS_DIGEST_MAX + 1];
    if (!arr)
        return NULL;
    for (size_t i = 0; i < m->n_resources; i++) {
        const oms_resource *r = &m->resources[i];
        json_t *o = json_object();
        json_t *name = json_string(r->name);
        oms_hex(r->digest, r->digest_len, hex);
        if (!o || !name || json_object_set_new(o, "name", name) != 0 ||
            json_object_set_new(o, "algorithm", json_string(m->hash_type)) != 0 ||
            json_object_set_new(o, "digest", json_string(hex)) != 0 ||
            json_array_append_new(arr, o) != 0) {
            json_decref(o);
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

static json_t *serialization_json(const oms_manifest *m)
{
    json_t *ser = json_object(), *ign = json_array();
    int bad = !ser || !ign;
    bad = bad || json_object_set_new(ser, "method", json_string(m->shards ? "shards" : "files"));
    bad = bad || json_object_set_new(ser, "hash_type", json_string(m->hash_type));
    bad = bad || json_object_set_new(ser, "allow_symlinks", json_boolean(m->allow_symlinks));
    if (m->shards)
        bad =
            bad || json_object_set_new(ser, "shard_size", json_integer((json_int_t)m->shard_size));
    for (size_t i = 0; !bad && i < m->n_ignore_paths; i++)
        bad = json_array_append_new(ign, json_string(m->ignore_paths[i])) != 0;
    bad = bad || json_object_set(ser, "ignore_paths", ign);
    json_decref(ign);
    if (bad) {
        json_decref(ser);
        return NULL;
    }
    return ser;
}

char *oms_statement_build(const oms_manifest *m)
{
    json_t *st = json_object(), *subj = json_array(), *s0 = json_object(), *dig = json_object();
    json_t *pred = json_object();
    json_t *res = resources_json(m), *ser = serialization_json(m);
    char *out = NULL;
    int bad = !st || !subj || !s0 || !dig || !pred || !res || !ser;
    bad = bad || json_object_set_new(dig, "sha256", json_string(m->root_digest));
    bad = bad || json_object_set_new(s0, "name", json_string(m->model_name));
    bad = bad || json_object_set(s0, "digest", dig);
    bad = bad || json_array_append(subj, s0);
    bad = bad || json_object_set_new(st, "_type", json_string(OMS_STATEMENT_TYPE));
    bad = bad || json_object_set(st, "subject", subj);
    bad = bad || json_object_set_new(st, "predicateType", json_string(OMS_PREDICATE_TYPE));
    bad = bad || json_object_set(pred, "resources", res);
    bad = bad || json_object_set(pred, "serialization", ser);
    bad = bad || json_object_set(st, "predicate", pred);
    if (!bad)
        out = json_dumps(st, JSON_INDENT(2));
    json_decref(st);
    json_decref(subj);
    json_decref(s0);
    json_decref(dig);
    json_decref(pred);
    json_decref(res);
    json_decref(ser);
    return out;
}

static json_t *material_json(const char *key_hint, unsigned char *const *cert_ders,
                             const size_t *cert_lens, size_t n_certs)
{
    json_t *vm = json_object(), *inner = json_object(), *certs = json_array();
    int bad = !vm || !inner || !certs;
    if (!bad && cert_ders) {
        for (size_t i = 0; !bad && i < n_certs; i++) {
            char *b64 = oms_b64_encode(cert_ders[i], cert_lens[i]);
            json_t *c = json_object();
            bad = !b64 || !c || json_object_set_new(c, "rawBytes", json_string(b64)) != 0 ||
                  json_array_append(certs, c) != 0;
            json_decref(c);
            free(b64);
        }
        bad = bad || json_object_set(inner, "certificates", certs) ||
              json_object_set(vm, "x509CertificateChain", inner);
    } else if (!bad) {
        bad = json_object_set_new(inner, "hint", json_string(key_hint)) ||
              json_object_set(vm, "publicKey", inner);
    }
    bad = bad || json_object_set_new(vm, "tlogEntries", json_array());
    json_decref(inner);
    json_decref(certs);
    if (bad) {
        json_decref(vm);
        return NULL;
    }
    return vm;
}

char *oms_bundle_build(const char *key_hint, unsigned char *const *cert_ders,
                       const size_t *cert_lens, size_t n_certs, const unsigned char *payload,
                       size_t payload_len, const unsigned char *sig, size_t sig_len)
{
    json_t *root = json_object(), *env = json_object(), *sigs = json_array(), *s0 = json_object();
    json_t *vm = material_json(key_hint, cert_ders, cert_lens, n_certs);
    char *p64 = oms_b64_encode(payload, payload_len), *s64 = oms_b64_encode(sig, sig_len);
    char *out = NULL;
    int bad = !root || !env || !sigs || !s0 || !vm || !p64 || !s64;
    bad = bad || json_object_set_new(root, "mediaType", json_string(OMS_BUNDLE_MEDIA));
    bad = bad || json_object_set(root, "verificationMaterial", vm);
    bad = bad || json_object_set_new(env, "payload", json_string(p64));
    bad = bad || json_object_set_new(env, "payloadType", json_string(OMS_PAYLOAD_TYPE));
    bad = bad || json_object_set_new(s0, "sig", json_string(s64));
    bad = bad || json_object_set_new(s0, "keyid", json_string(""));
    bad = bad || json_array_append(sigs, s0);
    bad = bad || json_object_set(env, "signatures", sigs);
    bad = bad || json_object_set(root, "dsseEnvelope", env);
    if (!bad)
        out = json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    json_decref(env);
    json_decref(sigs);
    json_decref(s0);
    json_decref(vm);
    free(p64);
    free(s64);
    return out;
}
