#include "wsframe.h"

#include <string.h>

lw_wsf_result lw_wsf_parse(const uint8_t *in, size_t len, size_t max_payload, lw_wsf_header *out,
                           uint16_t *close_code)
{
    *close_code = LW_WSF_PROTOCOL_ERROR;
    if (len < 1)
        return LW_WSF_NEED_MORE;
    uint8_t b0 = in[0];
    out->fin = (b0 & 0x80) != 0;
    out->opcode = b0 & 0x0F;
    if (b0 & 0x70)
        return LW_WSF_ERROR; /* RSV bits: we negotiate no extension */
    bool control = (out->opcode & 0x8) != 0;
    switch (out->opcode) {
    case LW_WSF_CONT:
    case LW_WSF_TEXT:
    case LW_WSF_BINARY:
    case LW_WSF_CLOSE:
    case LW_WSF_PING:
    case LW_WSF_PONG:
        break;
    default:
        return LW_WSF_ERROR;
    }
    if (control && !out->fin)
        return LW_WSF_ERROR;
    if (len < 2)
        return LW_WSF_NEED_MORE;
    uint8_t b1 = in[1];
    if (!(b1 & 0x80))
        return LW_WSF_ERROR; /* a client must mask every frame (§5.1) */
    uint64_t n = b1 & 0x7F;
    size_t pos = 2;
    if (n == 126) {
        if (len < 4)
            return LW_WSF_NEED_MORE;
        n = (uint64_t)in[2] << 8 | in[3];
        pos = 4;
    } else if (n == 127) {
        if (len < 10)
            return LW_WSF_NEED_MORE;
        n = 0;
        for (int i = 0; i < 8; i++)
            n = n << 8 | in[2 + i];
        if (n >> 63)
            return LW_WSF_ERROR; /* the most significant bit must be 0 */
        pos = 10;
    }
    /* Refused on the length alone, before a byte of the payload is read. */
    if (control && n > LW_WSF_CONTROL_MAX)
        return LW_WSF_ERROR;
    if (n > max_payload) {
        *close_code = LW_WSF_TOO_BIG;
        return LW_WSF_ERROR;
    }
    if (len < pos + 4)
        return LW_WSF_NEED_MORE;
    memcpy(out->mask, in + pos, 4);
    out->header_len = pos + 4;
    out->payload_len = (size_t)n;
    return LW_WSF_OK;
}

void lw_wsf_unmask(uint8_t *payload, size_t n, const uint8_t mask[4])
{
    for (size_t i = 0; i < n; i++)
        payload[i] ^= mask[i & 3];
}

size_t lw_wsf_header_write(uint8_t *out, uint8_t opcode, size_t payload_len)
{
    out[0] = (uint8_t)(0x80 | (opcode & 0x0F));
    if (payload_len < 126) {
        out[1] = (uint8_t)payload_len;
        return 2;
    }
    if (payload_len <= 0xFFFF) {
        out[1] = 126;
        out[2] = (uint8_t)(payload_len >> 8);
        out[3] = (uint8_t)payload_len;
        return 4;
    }
    out[1] = 127;
    uint64_t n = payload_len;
    for (int i = 9; i >= 2; i--, n >>= 8)
        out[i] = (uint8_t)n;
    return 10;
}

bool lw_wsf_utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t extra;
        uint32_t cp, min;
        if ((c & 0xE0) == 0xC0) {
            extra = 1, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            extra = 2, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            extra = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false; /* a continuation byte first, or 0xF8..0xFF */
        }
        if (n - i <= extra)
            return false;
        for (size_t k = 1; k <= extra; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += extra + 1;
    }
    return true;
}

bool lw_wsf_close_code_valid(uint16_t code)
{
    if (code >= 3000 && code <= 4999)
        return true; /* registered and private-use codes */
    switch (code) {
    case 1000:
    case 1001:
    case 1002:
    case 1003:
    case 1007:
    case 1008:
    case 1009:
    case 1010:
    case 1011:
        return true;
    default:
        return false; /* 1004-1006 and 1015 are never sent; the rest are unassigned */
    }
}
