/*
 * The JSON codec: Python objects <-> UTF-8 JSON bytes (RFC 8259). One encoder and one
 * decoder serve both the public module data_bridge.json and the server's hot path, which
 * calls these functions directly with no Python-level call.
 */
#ifndef DB_JSON_JSON_H
#define DB_JSON_JSON_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "common/buf.h"

/* Option flags for json_encode. */
#define JSON_OPT_SORT_KEYS      (1u << 0)
#define JSON_OPT_INDENT_2       (1u << 1)
#define JSON_OPT_NON_STR_KEYS   (1u << 2)
#define JSON_OPT_NAIVE_UTC      (1u << 3)
#define JSON_OPT_DECIMAL_STRING (1u << 4)
/* Standard-library dataclasses written as pydantic's serializer writes them (the encoding
 * of a dataclass response model; encode_model.c), not by their values. Internal: the
 * responder (data_bridge.api.routing) passes it as option=1 << 8. */
#define JSON_OPT_AS_MODEL (1u << 8)

#define JSON_MAX_DEPTH 512

typedef struct {
    unsigned flags;
    PyObject *default_fn; /* borrowed; NULL for none */
} json_enc_opts_t;

/* Appends the encoding of obj to out. opts may be NULL (compact, defaults). Returns 0, or
 * -1 with JSONEncodeError (or MemoryError) set; out->len is then unspecified. */
int json_encode(PyObject *obj, db_buf_t *out, const json_enc_opts_t *opts);

/* Decodes exactly one JSON document from p[0..n). Returns a new reference, or NULL with
 * JSONDecodeError (msg, doc, pos, lineno, colno) or MemoryError set. */
PyObject *json_decode(const char *p, size_t n);

/* Adds dumps, loads, JSONEncodeError, JSONDecodeError and the OPT_* constants to the
 * extension module. Returns 0 or -1 with an exception set. */
int json_module_init(PyObject *module);

#endif
