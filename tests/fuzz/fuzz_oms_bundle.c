/* Fuzzes the OMS bundle parser (no file system, no crypto): every input is
 * parsed once as bundle JSON, and once as a DSSE payload (in-toto statement)
 * wrapped into an otherwise valid bundle, so the statement parser is reached
 * without the fuzzer having to find base64 first. */
#include "image/image.h"

#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void parse_one(const unsigned char *json, size_t len)
{
    oms_bundle b;
    char err[512], signer[OMS_SIGNER_MAX];
    if (oms_bundle_parse(json, len, &b, err, sizeof err) != 0) {
        /* Every failure must say why, in one sentence. */
        if (err[0] == 0 || strchr(err, '\n'))
            abort();
        return;
    }
    if (b.manifest.n_resources == 0 || !b.payload)
        abort(); /* a parsed bundle always has a payload and resources */
    (void)oms_bundle_describe_signer(&b, signer, sizeof signer);
    oms_bundle_free(&b);
}

static void parse_as_payload(const uint8_t *data, size_t size)
{
    static const char head[] = "{\"mediaType\":\"application/vnd.dev.sigstore.bundle.v0.3+json\","
                               "\"verificationMaterial\":{\"publicKey\":{\"hint\":\"00\"}},"
                               "\"dsseEnvelope\":{\"payloadType\":\"application/vnd.in-toto+json\","
                               "\"signatures\":[{\"sig\":\"AAAA\"}],\"payload\":\"";
    static const char tail[] = "\"}}";
    size_t b64 = sodium_base64_encoded_len(size, sodium_base64_VARIANT_ORIGINAL);
    size_t len = sizeof head - 1 + b64 - 1 + sizeof tail - 1;
    char *json = malloc(len + 1);
    if (!json)
        return;
    memcpy(json, head, sizeof head - 1);
    sodium_bin2base64(json + sizeof head - 1, b64, data, size, sodium_base64_VARIANT_ORIGINAL);
    memcpy(json + sizeof head - 1 + b64 - 1, tail, sizeof tail);
    parse_one((const unsigned char *)json, len);
    free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20))
        return 0;
    parse_one(data, size);
    parse_as_payload(data, size);
    return 0;
}
