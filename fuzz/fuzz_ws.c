/*
 * fuzz_ws.c — WebSocket messages from clients: each input opens /v1/ws on
 * the real server (lwfuzz.h) with a valid credential, then sends the input
 * as frames, then hangs up.
 *
 * Input: one mode byte, then the frames.
 *   mode & 3   the socket: 0 primary (@P@), 1 companion (@C@),
 *              2 link socket of the pending request (@M@), 3 spare (@V@)
 *   mode & 4   raw: the rest goes on the wire as it is (any framing error)
 *   mode & 8   framed but unmasked (a protocol error servers must refuse)
 * Framed: records of [b0][len_hi][len_lo][payload…]: b0 is the frame's first
 * byte as sent (FIN, RSV bits, opcode: invalid ones included); the harness
 * writes the length field in its shortest form and masks the payload with a
 * key derived from the record's position, so runs are reproducible.
 */
#include <string.h>

#include "fuzz.h"
#include "lwfuzz.h"

#define WS_RECORDS_MAX 64

static const char *const credential[4] = {"@P@", "@C@", "@M@", "@V@"};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    lwf_server_init();
    lwf_fixture();
    return 0;
}

/* Appends one client frame; returns the payload bytes consumed from in. */
static size_t frame(lw_buf *out, uint8_t b0, const uint8_t *payload, size_t n, bool mask, unsigned idx)
{
    uint8_t hdr[8];
    size_t h = 0;
    hdr[h++] = b0;
    uint8_t m = mask ? 0x80 : 0;
    if (n < 126) {
        hdr[h++] = (uint8_t)(m | n);
    } else { /* records hold at most 0xffff bytes; raw mode covers the 64-bit form */
        hdr[h++] = m | 126;
        hdr[h++] = (uint8_t)(n >> 8);
        hdr[h++] = (uint8_t)n;
    }
    uint8_t key[4] = {(uint8_t)(0x5a ^ idx), (uint8_t)(0xc3 + idx), 0x17, (uint8_t)(idx * 7)};
    if (mask) {
        memcpy(hdr + h, key, 4);
        h += 4;
    }
    if (lw_buf_append(out, hdr, h) != LW_OK)
        return n;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = mask ? payload[i] ^ key[i & 3] : payload[i];
        if (lw_buf_append(out, &c, 1) != LW_OK)
            break;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > LWF_INPUT_MAX)
        return 0;
    lwf_fixture();
    uint8_t mode = data[0];
    lw_buf head, msg, resp;
    lw_buf_init(&head, 4096);
    lw_buf_init(&msg, 2 * LWF_INPUT_MAX);
    lw_buf_init(&resp, LWF_RESPONSE_MAX);
    lw_buf_appendf(&head,
                   "GET /v1/ws HTTP/1.1\r\nHost: fuzz\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                   "Authorization: Bearer %s\r\n\r\n",
                   credential[mode & 3]);
    if (lwf_expand((const uint8_t *)head.data, head.len, &msg) != LW_OK)
        goto out;
    const uint8_t *p = data + 1, *end = data + size;
    if (mode & 4) {
        lw_buf_append(&msg, p, (size_t)(end - p));
    } else {
        for (unsigned idx = 0; idx < WS_RECORDS_MAX && end - p >= 3; idx++) {
            size_t n = (size_t)p[1] << 8 | p[2];
            uint8_t b0 = p[0];
            p += 3;
            if (n > (size_t)(end - p))
                n = (size_t)(end - p);
            p += frame(&msg, b0, p, n, !(mode & 8), idx);
        }
    }
    lwf_exchange(msg.data, msg.len, &resp);
out:
    lw_buf_free(&head);
    lw_buf_free(&msg);
    lw_buf_free(&resp);
    return 0;
}
