/*
 * Form bodies: an incremental multipart/form-data parser (RFC 7578 on the RFC 2046 §5.1.1
 * framing) and an iterator over application/x-www-form-urlencoded pairs (WHATWG URL §5.1).
 * No Python headers: both are unit-tested (tests/c/test_form_*.c) and fuzzed
 * (fuzz/fuzz_form_*.c) on their own.
 *
 * Multipart, as a caller sees it. form_multipart_new() takes the request's Content-Type
 * value, checks that it is multipart/form-data and takes its boundary parameter. The body
 * is then fed in pieces of any size (form_multipart_feed); every split point gives the same
 * callbacks with the same bytes, only the data chunks may be cut differently. At the end of
 * the body the caller calls form_multipart_finish(), which reports a body that stopped
 * before its close delimiter. The callbacks, for each part, in this order:
 *
 *   on_part_begin(user)                      a delimiter line opened a new part
 *   on_header(user, name, value)             once per header line of the part, as sent
 *   on_headers_complete(user, part)          the blank line: part->name, ->filename,
 *                                            ->content_type are parsed and decoded
 *   on_part_data(user, data, len)            zero or more chunks of the part's content
 *   on_part_end(user)                        the next delimiter ended the part
 *
 * and on_finish(user) once after the close delimiter. A Python wrapper builds a field from
 * this directly: on_headers_complete gives what it needs to choose between a str field
 * (part->has_filename == 0) and an UploadFile (filename, content_type, the headers it
 * collected from on_header), on_part_data appends to a bytearray or writes to a spooled
 * file, on_part_end stores the field. A callback returns 0 to go on; anything else stops
 * the parser with FORM_E_CALLBACK, so the wrapper keeps its own reason (say, a Python
 * exception set) and the parser stays in that error. Any callback may be NULL.
 *
 * Ownership: the parser copies header lines (at most limits.max_header_bytes per part)
 * into its own buffer; the header slices and every pointer in form_part_t stay valid until
 * on_part_end returns. A data chunk is valid during its callback only: it points into the
 * piece being fed (zero-copy) or, for bytes held back at the end of an earlier piece
 * because they might have begun a delimiter, into the parser's copy of the delimiter
 * (held-back bytes are always a prefix of "\r\n--boundary", so nothing is buffered: at
 * most 73 bytes are ever held back). A callback must not call back into the parser.
 *
 * Return convention: > 0 done (the close delimiter was read), 0 more body wanted, < 0 a
 * form_error_t (form_error_message gives the text). Errors are sticky.
 *
 * Urlencoded: the server holds the whole (size-limited) body, so there is no streaming
 * state: form_urlencoded_next() splits the next name/value pair, and the caller decodes
 * each slice with db_pct_decode(dst, src, n, 1) from common/text.h ('+' is a space).
 */
#ifndef DB_FORM_FORM_H
#define DB_FORM_FORM_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    FORM_E_CONTENT_TYPE = -1,     /* the Content-Type is not multipart/form-data */
    FORM_E_NO_BOUNDARY = -2,      /* no boundary parameter */
    FORM_E_BAD_BOUNDARY = -3,     /* boundary empty, over 70 bytes or not bchars */
    FORM_E_BAD_DELIMITER = -4,    /* a boundary line not followed by padding + CRLF or "--" */
    FORM_E_HEADER_TOO_LONG = -5,  /* a part's header block over max_header_bytes */
    FORM_E_TOO_MANY_HEADERS = -6, /* a part with more than max_headers lines */
    FORM_E_BAD_HEADER = -7,       /* a header line without colon, bad name, CTL, fold */
    FORM_E_BAD_DISPOSITION = -8,  /* Content-Disposition missing, repeated, not form-data */
    FORM_E_MISSING_NAME = -9,     /* Content-Disposition without a name parameter */
    FORM_E_AFTER_CLOSE = -10,     /* bytes after the close delimiter other than CRLF */
    FORM_E_TRUNCATED = -11,       /* the body ended before the close delimiter */
    FORM_E_TOO_MANY_PARTS = -12,  /* more than max_parts parts */
    FORM_E_FIELD_TOO_LARGE = -13, /* a non-file part over max_field_size */
    FORM_E_FILE_TOO_LARGE = -14,  /* a file part over max_file_size */
    FORM_E_BODY_TOO_LARGE = -15,  /* more than max_body bytes fed */
    FORM_E_CALLBACK = -16,        /* a callback returned non-zero */
    FORM_E_NO_MEMORY = -17,       /* allocation failed */
    FORM_E__LAST = -18
} form_error_t;

/* A static English sentence for a form_error_t (never NULL). */
const char *form_error_message(int code);

/* Limits. form_limits_default() fills the safe defaults given in the comments; the parser
 * enforces all of them itself, so a caller's callbacks never see data over a limit. A part
 * is a file when its Content-Disposition has a filename (or filename*) parameter, empty or
 * not, as Starlette decides (RFC 7578 §4.2). */
typedef struct {
    size_t max_parts;        /* 1000 */
    size_t max_headers;      /* header lines per part: 16 */
    size_t max_header_bytes; /* per part, the header lines with their CRLFs: 8 KiB */
    uint64_t max_field_size; /* the content of a non-file part: 1 MiB */
    uint64_t max_file_size;  /* the content of a file part: UINT64_MAX (the server's body
                                limit or the caller's spooling decides) */
    uint64_t max_body;       /* every byte fed: UINT64_MAX (the server's body limit) */
} form_limits_t;

void form_limits_default(form_limits_t *limits);

/* One part's parsed headers, given to on_headers_complete. name and filename are decoded
 * (quoted-string escapes removed, filename* percent-decoded and converted to UTF-8);
 * content_type is the header value as sent (NULL when absent: RFC 7578 §4.4 says
 * text/plain then). */
typedef struct {
    size_t index; /* 0 for the first part */
    const char *name;
    size_t name_len;
    const char *filename; /* NULL when has_filename is 0 */
    size_t filename_len;
    int has_filename;
    const char *content_type;
    size_t content_type_len;
} form_part_t;

typedef struct {
    int (*on_part_begin)(void *user);
    int (*on_header)(void *user, const char *name, size_t name_len, const char *value,
                     size_t value_len);
    int (*on_headers_complete)(void *user, const form_part_t *part);
    int (*on_part_data)(void *user, const char *data, size_t len);
    int (*on_part_end)(void *user);
    int (*on_finish)(void *user);
} form_callbacks_t;

typedef struct form_multipart form_multipart_t;

/* A parser for a body of the given Content-Type value (limits NULL: the defaults). Returns
 * NULL with *error set (FORM_E_CONTENT_TYPE, FORM_E_NO_BOUNDARY, FORM_E_BAD_BOUNDARY,
 * FORM_E_NO_MEMORY) when there is none. callbacks is copied; user is passed to each. */
form_multipart_t *form_multipart_new(const char *content_type, size_t len,
                                     const form_limits_t *limits, const form_callbacks_t *callbacks,
                                     void *user, int *error);

/* Feeds the next len bytes of the body. Returns 1 once the close delimiter and its line
 * end were read (what follows is the epilogue, ignored), 0 for more, < 0 an error. */
int form_multipart_feed(form_multipart_t *parser, const char *data, size_t len);

/* Ends the body: 1 when it was complete (on_finish has run, here or in the feed that read
 * the close delimiter's CRLF), FORM_E_TRUNCATED when it stopped early, or the earlier
 * error. */
int form_multipart_finish(form_multipart_t *parser);

void form_multipart_free(form_multipart_t *parser);

/* Inside a part's content (its next bytes will be content up to a delimiter): 1 with *held
 * the number of bytes held back at the end of the last piece (the next piece shows whether
 * they were content, and if so on_part_data gets them before any of it), else 0. A caller
 * that wants the next piece's content to land where it keeps the content leaves *held
 * bytes of room in front of it. */
int form_multipart_in_content(const form_multipart_t *parser, size_t *held);

/* The boundary parameter of a multipart Content-Type value (RFC 2046 §5.1.1: 1..70 bchars,
 * not ending in a space; quoted or not, RFC 9110 §5.6.6), copied to out (room for 70
 * bytes) with quoted-pairs removed. Returns its length or FORM_E_NO_BOUNDARY /
 * FORM_E_BAD_BOUNDARY. The media type itself is not checked here. */
int form_multipart_boundary(const char *content_type, size_t len, char *out);

/* Iterator over application/x-www-form-urlencoded name/value pairs. */
typedef struct {
    const char *p;
    size_t len;
    size_t pos;
} form_urlencoded_t;

void form_urlencoded_init(form_urlencoded_t *it, const char *body, size_t len);

/* The next pair as raw slices of the body (WHATWG URL §5.1 "application/x-www-form-
 * urlencoded parsing"): pairs are split on '&', empty ones skipped; the name ends at the
 * first '=', and a pair without '=' has an empty value. The slices are still encoded
 * (decode with db_pct_decode(..., 1)). Returns 1, or 0 at the end. */
int form_urlencoded_next(form_urlencoded_t *it, const char **name, size_t *name_len,
                         const char **value, size_t *value_len);

#endif
