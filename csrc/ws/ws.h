/*
 * WebSocket bytes (RFC 6455) and permessage-deflate (RFC 7692), without Python headers:
 * unit-tested in tests/c/test_ws_*.c and fuzzed in fuzz/fuzz_ws_*.c. The server
 * integration (the upgrade, the connection's read and write paths) builds on this.
 *
 * Parsing, as a caller sees it. A ws_parser_t is initialised for one direction
 * (ws_parser_init: a server parses masked client frames) and fed the bytes read, in pieces
 * of any size, with ws_parser_next(). Each call consumes some of the piece (*used) and
 * returns one event, 0 when the piece is used up and nothing is pending, or a negative
 * ws_error_t; errors are sticky, and ws_close_code() gives the close code to send (1002,
 * 1007, 1009 or 1011). The caller loops until 0 or an error, even when the piece is empty
 * (an empty frame ends with no bytes left to read). The events:
 *
 *   WS_EV_FRAME      a data frame's header: opcode (WS_OP_TEXT/BINARY/CONT), message_opcode
 *                    (TEXT or BINARY: the message it belongs to), fin, compressed (the
 *                    message's RSV1), first (it starts a message), length (its payload)
 *   WS_EV_DATA       data, len: a chunk of that frame's payload, unmasked in place in the
 *                    piece being fed (so the piece must be writable); zero-copy
 *   WS_EV_FRAME_END  the frame's payload is complete; fin says the message is complete
 *   WS_EV_CONTROL    a whole control frame (opcode WS_OP_CLOSE/PING/PONG, fin is always 1):
 *                    data, len its payload (at most 125 bytes, copied into the parser since
 *                    it may span pieces); for a close frame also close_code (1005 when the
 *                    payload is empty, RFC 6455 §7.1.5) and reason, reason_len
 *
 * Control frames may come between the frames of a fragmented message (§5.4). After a
 * close frame the parser reads nothing more: later bytes are consumed and dropped (§5.5.1:
 * the peer sends no data frames after its close).
 *
 * What the parser enforces, each with its error: masking per direction (§5.1), reserved
 * bits (RSV1 only when permessage-deflate was agreed, and then only on the first frame of
 * a data message, RFC 7692 §6.1), known opcodes (§5.2), control frames of at most 125
 * bytes and not fragmented (§5.5), the continuation rules (§5.4), a 64-bit length with its
 * most significant bit 0 (§5.2), max_message (the payload bytes of one message as sent;
 * 1009), close payloads (§5.5.1, §7.4: one byte, a code not allowed on the wire, a reason
 * that is not UTF-8), and UTF-8 in uncompressed text messages, incrementally, failing on
 * the first byte that cannot begin or continue a valid sequence (§8.1: 1007). A rule broken
 * by a frame's header is reported before any of its payload; invalid UTF-8 is reported in
 * the chunk that holds it, so the chunks before it (valid so far) were already handed out.
 *
 * Slices and their lifetimes: WS_EV_DATA's data points into the caller's piece (valid as
 * long as the caller keeps that piece); WS_EV_CONTROL's data and reason point into the
 * parser (valid until the next call to ws_parser_next). No allocation: the parser is a
 * plain struct that the caller embeds and needs no free. A ws_message_t owns its data
 * (valid until ws_message_reset, the next message's first frame or ws_message_free).
 * Writers append to the caller's db_buf_t and keep nothing.
 *
 * Who assembles messages: the caller. A streaming consumer takes the chunks as they come;
 * ws_message_t (below) collects the chunks of one message into a db_buf_t it owns,
 * inflates compressed messages with a ws_inflater_t under a bound on the inflated size
 * (1009) and validates the UTF-8 of compressed text messages (the parser can only check
 * the bytes it sees, which for those are deflate data).
 *
 * Writing: ws_frame_header() writes a frame header (2 to 14 bytes) for any length, masked
 * or not; ws_write_frame() and ws_write_close() append whole server frames (unmasked,
 * §5.1) to a db_buf_t. A ws_deflater_t compresses one message's payload per call.
 *
 * The handshake (§4.2): ws_key_valid() (base64 of 16 bytes), ws_accept_key()
 * (Sec-WebSocket-Accept: SHA-1 of the key and the GUID, in base64), ws_version_ok() ("13"),
 * ws_deflate_negotiate() (picks the first acceptable permessage-deflate offer of a
 * Sec-WebSocket-Extensions value, RFC 7692 §7.1) and ws_deflate_response() (the header
 * value that accepts it). SHA-1 (RFC 3174) and base64 (RFC 4648 §4) are written here.
 *
 * Return convention: >= 0 success, < 0 a ws_error_t (ws_error_message gives the text).
 */
#ifndef DB_WS_WS_H
#define DB_WS_WS_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* Opcodes (RFC 6455 §5.2, §11.8). */
enum {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA
};

/* Close codes this component produces or treats specially (§7.4.1). */
enum {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_PROTOCOL = 1002,
    WS_CLOSE_NO_STATUS = 1005, /* reported for an empty close payload; never sent */
    WS_CLOSE_INVALID_DATA = 1007,
    WS_CLOSE_TOO_BIG = 1009,
    WS_CLOSE_INTERNAL = 1011
};

typedef enum {
    WS_E_UNMASKED = -1,           /* a client frame without mask (server side): 1002 */
    WS_E_MASKED = -2,             /* a server frame with a mask (client side): 1002 */
    WS_E_RSV = -3,                /* a reserved bit not agreed, or RSV1 where not allowed */
    WS_E_OPCODE = -4,             /* a reserved opcode */
    WS_E_CONTROL_TOO_LONG = -5,   /* a control frame over 125 bytes */
    WS_E_CONTROL_FRAGMENTED = -6, /* a control frame without FIN */
    WS_E_NO_MESSAGE = -7,         /* a continuation frame with no message started */
    WS_E_IN_MESSAGE = -8,         /* a text/binary frame inside a fragmented message */
    WS_E_LENGTH = -9,             /* a 64-bit length with its most significant bit set */
    WS_E_TOO_BIG = -10,           /* a message over max_message (or inflated over its bound) */
    WS_E_CLOSE_PAYLOAD = -11,     /* a close payload of one byte */
    WS_E_CLOSE_CODE = -12,        /* a close code not allowed on the wire */
    WS_E_UTF8 = -13,              /* invalid UTF-8 in a text message or a close reason */
    WS_E_INFLATE = -14,           /* compressed data that does not inflate */
    WS_E_NO_MEMORY = -15,         /* allocation failed */
    WS_E_ARG = -16,               /* a writer argument out of range (code, control length) */
    WS_E__LAST = -17
} ws_error_t;

/* A static English sentence for a ws_error_t (never NULL). */
const char *ws_error_message(int code);
/* The close code to send for a ws_error_t: 1002 protocol errors, 1007 invalid UTF-8 and
 * undecodable compressed data, 1009 too big, 1011 the rest (memory, arguments). */
int ws_close_code(int code);
/* Whether a close code may appear in a close frame (§7.4.1, §7.4.2: 1000-1003, 1007-1014
 * (1012-1014 from the IANA registry), 3000-4999; never 1004, 1005, 1006, 1015). */
int ws_close_code_valid(int code);

/* --- UTF-8 (RFC 3629 §4), incremental --------------------------------------------------- */

/* A validator that carries an incomplete sequence across chunks: zero-initialise it (or
 * ws_utf8_init) per message. */
typedef struct {
    uint8_t need; /* continuation bytes still expected */
    uint8_t lo;   /* the range of the next byte: narrower after E0, ED, F0, F4 */
    uint8_t hi;
} ws_utf8_t;

void ws_utf8_init(ws_utf8_t *v);
/* Checks the next n bytes: 0 while valid so far, WS_E_UTF8 at the first byte that cannot
 * be part of valid UTF-8 (overlong forms, surrogates, code points over U+10FFFF). */
int ws_utf8_feed(ws_utf8_t *v, const uint8_t *p, size_t n);
/* At the message's end: 0, or WS_E_UTF8 when a sequence is incomplete. */
int ws_utf8_finish(const ws_utf8_t *v);
/* Whole-buffer check: 0 or WS_E_UTF8. */
int ws_utf8_valid(const uint8_t *p, size_t n);

/* --- the frame parser (RFC 6455 §5) ----------------------------------------------------- */

enum { WS_EV_FRAME = 1, WS_EV_DATA = 2, WS_EV_FRAME_END = 3, WS_EV_CONTROL = 4 };

typedef struct {
    int type;
    int opcode;         /* the frame's opcode */
    int message_opcode; /* data frames: WS_OP_TEXT or WS_OP_BINARY */
    int fin;
    int compressed; /* the message had RSV1 (permessage-deflate) */
    int first;      /* the frame opens a message */
    uint64_t length;
    uint8_t *data;
    size_t len;
    int close_code;
    const char *reason;
    size_t reason_len;
} ws_event_t;

typedef struct {
    /* configuration, set by ws_parser_init */
    uint8_t server;   /* 1: frames come from a client and must be masked */
    uint8_t deflate;  /* 1: permessage-deflate was agreed, RSV1 allowed */
    uint64_t max_msg; /* payload bytes per message as sent; 0 for no limit */
    /* state */
    uint8_t state;
    uint8_t hdr[14]; /* the header bytes read so far */
    uint8_t hlen;
    uint8_t hneed;
    uint8_t opcode, fin, masked;
    uint8_t mask[4];
    uint8_t mask_pos;
    uint8_t in_message, msg_opcode, msg_compressed, msg_first;
    uint64_t length, remaining, msg_size;
    ws_utf8_t utf8;
    uint8_t ctrl[125];
    uint8_t ctrl_len;
    int error;
} ws_parser_t;

/* server: 1 to parse a client's frames (masked), 0 for a server's (unmasked). deflate: 1
 * once permessage-deflate was agreed. max_message: the limit on one message's payload as
 * sent, 0 for none (the inflated size is bounded by ws_message_t or ws_inflate). */
void ws_parser_init(ws_parser_t *p, int server, int deflate, uint64_t max_message);

/* Reads from data[0..len): returns an event type (ev filled) with *used bytes consumed, 0
 * when all len bytes were consumed and no event is pending, or a ws_error_t (sticky;
 * *used is then how far the parser got). data is modified: payloads are unmasked in
 * place. */
int ws_parser_next(ws_parser_t *p, uint8_t *data, size_t len, size_t *used, ws_event_t *ev);

/* XORs n bytes with the masking key (§5.3), the first byte being byte `offset` of the
 * payload. Returns the offset after them, modulo 4. */
size_t ws_mask(uint8_t *data, size_t n, const uint8_t key[4], size_t offset);

/* --- the frame writer ------------------------------------------------------------------- */

/* Writes a frame header to out (at most 14 bytes) and returns its length: FIN when fin,
 * RSV1 when rsv1 (the first frame of a compressed message), the length in 7, 16 or 64 bits
 * (the shortest, §5.2), and the masking key when key is not NULL (a client's frame). */
size_t ws_frame_header(uint8_t out[14], int opcode, int fin, int rsv1, uint64_t len,
                       const uint8_t *key);

/* Appends one unmasked frame (header and payload). Control frames must have fin set and at
 * most 125 bytes (WS_E_ARG otherwise). Returns 0, WS_E_ARG, or WS_E_NO_MEMORY (out as it
 * was). */
int ws_write_frame(db_buf_t *out, int opcode, int fin, int rsv1, const void *payload, size_t len);

/* Appends a close frame: code 0 for an empty payload, otherwise a code for which
 * ws_close_code_valid() holds and a UTF-8 reason of at most 123 bytes (§5.5.1). Returns 0,
 * WS_E_ARG, WS_E_UTF8 or WS_E_NO_MEMORY. */
int ws_write_close(db_buf_t *out, int code, const char *reason, size_t reason_len);

/* The payload of a close frame (§5.5.1): the code in network byte order, then the UTF-8
 * reason; code 0 for an empty payload (no reason then). Writes to out (at most 125 bytes)
 * and returns the length, or WS_E_ARG (a code ws_close_code_valid refuses, a reason over
 * 123 bytes or without a code) or WS_E_UTF8. */
int ws_close_payload(uint8_t out[125], int code, const char *reason, size_t reason_len);

/* The size of a whole frame of len payload bytes: its header (with the masking key when
 * masked) and the payload; 0 when that does not fit in a size_t. */
size_t ws_frame_size(uint64_t len, int masked);

/* Writes one whole masked frame, a client's (§5.1: a client masks every frame it sends),
 * into out, which holds ws_frame_size(len, 1) bytes: FIN set, the header with key, then
 * the payload XORed with key (§5.3; key must come from a strong source of entropy, §10.3).
 * Control frames (§5.5) must have at most 125 bytes. Returns the bytes written, or
 * WS_E_ARG (an unknown opcode, a control payload over 125 bytes). */
int64_t ws_write_masked_frame(uint8_t *out, int opcode, const void *payload, size_t len,
                              const uint8_t key[4]);

/* --- the handshake (RFC 6455 §4.2, §1.3) ------------------------------------------------ */

typedef struct {
    uint32_t h[5];
    uint64_t bytes;
    uint8_t block[64];
    size_t used;
} ws_sha1_t;

void ws_sha1_init(ws_sha1_t *s);
void ws_sha1_update(ws_sha1_t *s, const void *data, size_t len);
void ws_sha1_final(ws_sha1_t *s, uint8_t out[20]);

/* Base64 with padding (RFC 4648 §4): writes 4 * ceil(n / 3) bytes (no NUL), returns it. */
size_t ws_base64_encode(const uint8_t *in, size_t n, char *out);

/* Whether a Sec-WebSocket-Key value (leading and trailing spaces allowed) is the base64 of
 * 16 bytes (§4.1 item 7): 22 base64 characters, the last of which leaves no stray bits,
 * then "==". */
int ws_key_valid(const char *key, size_t len);

/* Sec-WebSocket-Accept for a key (trimmed as above): writes 28 bytes to out and returns
 * 28, or WS_E_ARG when the key is not valid. */
int ws_accept_key(const char *key, size_t len, char out[28]);

/* Whether a Sec-WebSocket-Version value is "13" (§4.2.1 item 6). */
int ws_version_ok(const char *value, size_t len);

/* permessage-deflate parameters (RFC 7692 §7.1). */
typedef struct {
    int enabled;
    int server_no_context_takeover;
    int client_no_context_takeover;
    int server_max_window_bits; /* 9..15: our compressor's window; 0: 15, not sent */
    int client_max_window_bits; /* 8..15: asked of the peer; 0: not sent */
} ws_deflate_params_t;

/* What the server is willing to agree to. */
typedef struct {
    int enabled;
    int server_no_context_takeover; /* 1: drop our window after each message (less memory) */
    int client_no_context_takeover; /* 1: ask the client to do the same */
    int server_max_window_bits;     /* our largest window, 9..15 */
    int client_max_window_bits;     /* asked of the client when it offers the parameter */
} ws_deflate_config_t;

void ws_deflate_config_default(ws_deflate_config_t *c);

/* Reads a Sec-WebSocket-Extensions value (a comma-separated list of offers, RFC 6455
 * §9.1) and takes the first permessage-deflate offer that is valid and acceptable (§7.1:
 * no unknown or repeated parameter, window bits 8..15, quoted values allowed). Returns 1
 * with *out filled, 0 when no offer is taken (out->enabled is 0), never an error: an
 * invalid offer is declined, not answered with 400 (§7.1 lets the server decline). Call
 * it once per header field line until one returns 1. */
int ws_deflate_negotiate(const char *value, size_t len, const ws_deflate_config_t *config,
                         ws_deflate_params_t *out);

/* Writes the Sec-WebSocket-Extensions response value for agreed params (no NUL). Returns
 * its length, or WS_E_ARG when cap (at least 128 is always enough) is too small. */
int ws_deflate_response(const ws_deflate_params_t *params, char *out, size_t cap);

/* --- permessage-deflate (RFC 7692 §7.2) ------------------------------------------------- */

typedef struct ws_deflater ws_deflater_t;
typedef struct ws_inflater ws_inflater_t;

/* A compressor for one connection's outgoing messages: window_bits 9..15 (the agreed
 * server_max_window_bits; zlib's memLevel is window_bits - 7), no_context_takeover as
 * agreed, level 0..9 (or -1 for zlib's default). NULL when out of memory or an argument
 * is out of range. */
ws_deflater_t *ws_deflater_new(int window_bits, int no_context_takeover, int level);
void ws_deflater_free(ws_deflater_t *d);

/* Appends the compressed payload of one whole message (raw deflate, flushed with
 * Z_SYNC_FLUSH, its trailing 00 00 ff ff removed, §7.2.1). Returns 0, or WS_E_NO_MEMORY
 * (out as it was; the compressor is reset, so both ends must then close). */
int ws_deflate_message(ws_deflater_t *d, const void *in, size_t n, db_buf_t *out);

/* A decompressor for one connection's incoming messages: window_bits 8..15, the window it
 * keeps (15 reads what any peer may send; a smaller one saves memory, but zlib refuses a
 * distance beyond it only when it reaches outside the current output chunk, so whether
 * such data is refused depends on how the payload was cut: the server uses 15);
 * no_context_takeover: reset after each message (as agreed in client_no_context_takeover).
 * NULL when out of memory or window_bits is out of range. */
ws_inflater_t *ws_inflater_new(int window_bits, int no_context_takeover);
void ws_inflater_free(ws_inflater_t *i);

/* An idle session's inflater, made small: between messages (WS_E_ARG otherwise, the
 * inflater kept) the state that matters with context takeover is the last output, of which
 * the peer's next message may refer back to the agreed window (keep: 1 << its
 * client_max_window_bits, RFC 7692 §7.1.2.2). ws_inflater_park frees the inflater and hands
 * back a malloc'd copy of those last bytes (*dict NULL when there are none): 4 KiB for a
 * 12-bit window where the inflater holds ~39 KiB. Returns 0, WS_E_ARG or WS_E_NO_MEMORY
 * (the inflater kept). ws_inflater_resume makes an inflater (as ws_inflater_new) that goes on
 * from such a copy; NULL when out of memory. */
int ws_inflater_park(ws_inflater_t *i, size_t keep, uint8_t **dict, size_t *n);
ws_inflater_t *ws_inflater_resume(int window_bits, int no_context_takeover, const uint8_t *dict,
                                  size_t n);

/* Inflates the next n bytes of a message's payload, appending to out; fin at the message's
 * last chunk, which appends 00 00 ff ff (§7.2.2; an empty payload is an empty message).
 * Output is never appended beyond out->len == max_out (0: no bound): the output stops
 * there with WS_E_TOO_BIG, so a small payload that inflates to gigabytes costs no more
 * memory than max_out (plus a 16 KiB stack buffer). What was inflated before an error
 * stays appended. Returns 0, WS_E_TOO_BIG, WS_E_INFLATE or WS_E_NO_MEMORY; after an error
 * the inflater must not be used again (the connection is closed). */
int ws_inflate(ws_inflater_t *i, const uint8_t *in, size_t n, int fin, db_buf_t *out,
               uint64_t max_out);

/* --- message assembly ------------------------------------------------------------------- */

/* Collects one message at a time from the parser's events into data (owned). For a
 * compressed message the chunks go through inflater (required then) and the inflated
 * text is checked for UTF-8; max_size bounds the message as the application sees it. */
typedef struct {
    db_buf_t data;
    int opcode; /* WS_OP_TEXT or WS_OP_BINARY once a message started */
    int compressed;
    int complete;
    uint64_t max_size; /* 0: no limit */
    ws_inflater_t *inflater;
    ws_utf8_t utf8;
} ws_message_t;

void ws_message_init(ws_message_t *m, uint64_t max_size, ws_inflater_t *inflater);
/* Takes one parser event (WS_EV_CONTROL is ignored: control frames are whole in their
 * event). Returns 1 when the message is complete (data, opcode), 0 for more, < 0 an
 * error (its close code from ws_close_code). A complete message stays until
 * ws_message_reset or the next message's first frame. */
int ws_message_add(ws_message_t *m, const ws_event_t *ev);
/* Empties data for the next message, keeping its storage. */
void ws_message_reset(ws_message_t *m);
void ws_message_free(ws_message_t *m);

/* --- a reader of whole messages ---------------------------------------------------------- */

/* The parser and message assembly together, for an end that wants whole messages and
 * control frames (the App's ASGI face reading its native server's frames as a client:
 * api/_asgi_bridge.py through csrc/asgi/ws_peer.c). No permessage-deflate: its users do
 * not offer it, so a compressed frame is an error (WS_E_RSV). */
typedef struct {
    ws_parser_t parser;
    ws_message_t msg;
    int error; /* sticky, as the parser's */
} ws_reader_t;

/* What ws_reader_next hands out: a whole data message (opcode WS_OP_TEXT, its UTF-8
 * checked, or WS_OP_BINARY) or a control frame (WS_OP_CLOSE, WS_OP_PING, WS_OP_PONG).
 * data, len: the payload, in the reader (valid until the next call); for a close frame also
 * close_code (1005 for an empty payload, §7.1.5) and reason, reason_len (UTF-8 checked). */
typedef struct {
    int opcode;
    const uint8_t *data;
    size_t len;
    int close_code;
    const char *reason;
    size_t reason_len;
} ws_read_t;

/* server: 1 to read a client's (masked) frames, 0 a server's (unmasked); max_message: the
 * bound on one message's payload, 0 for none. */
void ws_reader_init(ws_reader_t *r, int server, uint64_t max_message);
/* Reads from data[0..len) (modified: payloads are unmasked in place): 1 with *out filled
 * and *used bytes consumed, 0 when all len bytes were consumed and nothing is complete, or
 * a ws_error_t (sticky; ws_close_code gives the code to close with). Call it until it
 * returns 0 or an error, passing the bytes not yet used. Nothing is read after a close
 * frame (§5.5.1). */
int ws_reader_next(ws_reader_t *r, uint8_t *data, size_t len, size_t *used, ws_read_t *out);
void ws_reader_free(ws_reader_t *r);

#endif
