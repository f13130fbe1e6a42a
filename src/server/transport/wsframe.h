/*
 * wsframe.h — RFC 6455 framing as a server speaks it: client frames parsed
 * and checked, server frames written. Pure functions over caller-owned bytes,
 * no I/O and no allocation, so that a socket needs no framing state (and no
 * buffer) while it is idle; ws.c drives them.
 */
#ifndef LW_WSFRAME_H
#define LW_WSFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Opcodes (RFC 6455 §5.2). */
enum {
    LW_WSF_CONT = 0x0,
    LW_WSF_TEXT = 0x1,
    LW_WSF_BINARY = 0x2,
    LW_WSF_CLOSE = 0x8,
    LW_WSF_PING = 0x9,
    LW_WSF_PONG = 0xA,
};

/* Close codes we send (RFC 6455 §7.4.1). */
enum {
    LW_WSF_NORMAL = 1000,
    LW_WSF_PROTOCOL_ERROR = 1002,
    LW_WSF_BAD_DATA = 1007, /* text that is not UTF-8 */
    LW_WSF_POLICY = 1008,
    LW_WSF_TOO_BIG = 1009,
};

/* A client frame header: at most 2 + 8 + 4 bytes. */
#define LW_WSF_CLIENT_HEADER_MAX 14
/* A server frame header (never masked): at most 2 + 8 bytes. */
#define LW_WSF_SERVER_HEADER_MAX 10
/* Control frames carry at most this much (RFC 6455 §5.5). */
#define LW_WSF_CONTROL_MAX 125

typedef struct {
    bool fin;
    uint8_t opcode;
    uint8_t mask[4];
    size_t header_len;  /* bytes before the payload */
    size_t payload_len; /* checked against the caller's limit, so it fits */
} lw_wsf_header;

typedef enum {
    LW_WSF_NEED_MORE = 0, /* the header is not complete yet */
    LW_WSF_OK = 1,
    LW_WSF_ERROR = -1, /* a protocol violation: close with *close_code */
} lw_wsf_result;

/* Parses the header of the client frame at the start of in. A frame that is
 * unmasked, uses reserved bits or opcodes, is a fragmented or oversized
 * control frame, or announces more than max_payload bytes is an error, found
 * as soon as the bytes that show it have arrived (before its payload). */
lw_wsf_result lw_wsf_parse(const uint8_t *in, size_t len, size_t max_payload, lw_wsf_header *out,
                           uint16_t *close_code);

/* Unmasks n payload bytes in place (the payload's first byte is at key index 0). */
void lw_wsf_unmask(uint8_t *payload, size_t n, const uint8_t mask[4]);

/* Writes the header of a final, unmasked server frame; returns its length
 * (at most LW_WSF_SERVER_HEADER_MAX). */
size_t lw_wsf_header_write(uint8_t *out, uint8_t opcode, size_t payload_len);

/* True if s is well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
bool lw_wsf_utf8_valid(const uint8_t *s, size_t n);

/* True if a peer may send this code in a close frame (RFC 6455 §7.4). */
bool lw_wsf_close_code_valid(uint16_t code);

#endif
