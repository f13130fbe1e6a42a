/*
 * cred.c — "<prefix><selector>.<verifier>" credentials.
 */
#include "cred.h"

#include <string.h>

#include "lw.h"

#define SEL_B64 22 /* base64url of 16 bytes */
#define VER_B64 43 /* base64url of 32 bytes */
#define PREFIX_LEN 4
#define CRED_LEN (PREFIX_LEN + SEL_B64 + 1 + VER_B64)

_Static_assert(CRED_LEN + 1 <= LW_CRED_STRLEN, "credential string fits");

static const char *cred_prefix(lw_cred_kind kind)
{
    return kind == LW_CRED_LINK ? "lwl_" : "lws_";
}

void lw_cred_new(lw_cred *c, lw_cred_kind kind)
{
    c->kind = kind;
    lw_random(c->selector, sizeof c->selector);
    lw_random(c->verifier, sizeof c->verifier);
}

void lw_cred_format(const lw_cred *c, char dst[LW_CRED_STRLEN])
{
    memcpy(dst, cred_prefix(c->kind), PREFIX_LEN);
    lw_b64_encode(dst + PREFIX_LEN, c->selector, sizeof c->selector);
    dst[PREFIX_LEN + SEL_B64] = '.';
    lw_b64_encode(dst + PREFIX_LEN + SEL_B64 + 1, c->verifier, sizeof c->verifier);
}

int lw_cred_parse(lw_cred *c, const char *s, size_t len)
{
    if (s == NULL || len != CRED_LEN || s[PREFIX_LEN + SEL_B64] != '.')
        return LW_EINVAL;
    lw_cred tmp;
    if (memcmp(s, "lws_", PREFIX_LEN) == 0)
        tmp.kind = LW_CRED_SESSION;
    else if (memcmp(s, "lwl_", PREFIX_LEN) == 0)
        tmp.kind = LW_CRED_LINK;
    else
        return LW_EINVAL;
    const char *sel = s + PREFIX_LEN;
    const char *ver = sel + SEL_B64 + 1;
    int rc = LW_OK;
    if (lw_b64_decode(tmp.selector, sizeof tmp.selector, sel, SEL_B64, LW_SEL_BYTES) != LW_SEL_BYTES ||
        lw_b64_decode(tmp.verifier, sizeof tmp.verifier, ver, VER_B64, LW_VER_BYTES) != LW_VER_BYTES)
        rc = LW_EINVAL;
    else
        *c = tmp;
    lw_wipe(&tmp, sizeof tmp);
    return rc;
}

void lw_cred_hash(const lw_cred *c, const uint8_t key[LW_KEY_LEN], uint8_t out[LW_HASH_LEN])
{
    lw_keyed_hash(out, key, c->verifier, sizeof c->verifier);
}

void lw_cred_selector_str(const lw_cred *c, char dst[LW_ID_STRLEN])
{
    lw_b64_encode(dst, c->selector, sizeof c->selector);
}

void lw_cred_selector_text(const char *s, char dst[LW_ID_STRLEN])
{
    memcpy(dst, s + PREFIX_LEN, SEL_B64);
    dst[SEL_B64] = '\0';
}

void lw_cred_wipe(lw_cred *c)
{
    lw_wipe(c, sizeof *c);
}
