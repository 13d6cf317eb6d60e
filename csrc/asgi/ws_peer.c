/*
 * _core.WsClientCodec: the client end of a WebSocket (RFC 6455) for the App's ASGI face
 * (data_bridge/api/_asgi_bridge.py). Called with a "websocket" scope, the App writes the
 * upgrade request into a socketpair its native server adopts and then speaks WebSocket on
 * it as a client: it reads the server's frames (unmasked, §5.1) and writes masked ones
 * (§5.3). The bytes are handled by csrc/ws/ (ws_reader_t, ws_write_masked_frame,
 * ws_close_payload, unit-tested in tests/c/test_ws_reader.c); this file only turns them
 * into Python objects and back:
 *
 *   feed(data) -> list   the messages and control frames completed by data, in order:
 *                        ("text", str), ("bytes", bytes), ("close", code, reason),
 *                        ("ping", bytes), ("pong", bytes); a protocol error ends the list
 *                        with ("error", close_code, message) and every later feed returns
 *                        that again (errors are sticky, §7.1.7: the connection is failed)
 *   frame(opcode, payload) -> bytes   one whole masked frame (FIN set); payload a str
 *                        (encoded as UTF-8) or a bytes-like object
 *   close_frame(code=None, reason="") -> bytes   a masked close frame (§5.5.1); no code
 *                        for an empty payload
 *
 * The masking key of each frame is 4 bytes from getrandom(2) (§5.3, §10.3: unpredictable).
 */
#include <errno.h>
#include <sys/random.h>

#include "asgi/asgi_internal.h"
#include "ws/ws.h"

typedef struct {
    PyObject_HEAD
    ws_reader_t reader;
    db_buf_t in; /* a writable copy of the bytes fed (the reader unmasks in place) */
} WsClientCodecObject;

/* The first item of each tuple feed() returns, interned once. */
static PyObject *k_text, *k_bytes, *k_close, *k_ping, *k_pong, *k_error;

static PyObject *codec_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    (void)args;
    (void)kw;
    WsClientCodecObject *self = (WsClientCodecObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    /* A client reads a server's frames: unmasked (§5.1), no message bound by default. */
    ws_reader_init(&self->reader, 0, 0);
    db_buf_init(&self->in);
    return (PyObject *)self;
}

static int codec_init(WsClientCodecObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"max_size", NULL};
    unsigned long long max_size = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|$K", kwlist, &max_size))
        return -1;
    ws_reader_free(&self->reader);
    ws_reader_init(&self->reader, 0, max_size);
    return 0;
}

static void codec_dealloc(WsClientCodecObject *self)
{
    ws_reader_free(&self->reader);
    db_buf_free(&self->in);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The Python item for one thing the reader handed out; NULL with an exception. */
static PyObject *read_item(const ws_read_t *m)
{
    const char *data = m->len ? (const char *)m->data : "";
    switch (m->opcode) {
    case WS_OP_TEXT: {
        /* The reader checked the UTF-8 (§8.1), so decoding cannot fail but on memory. */
        PyObject *s = PyUnicode_DecodeUTF8(data, (Py_ssize_t)m->len, "strict");
        return s ? Py_BuildValue("(ON)", k_text, s) : NULL;
    }
    case WS_OP_BINARY:
        return Py_BuildValue("(Oy#)", k_bytes, data, (Py_ssize_t)m->len);
    case WS_OP_CLOSE: {
        PyObject *reason = PyUnicode_DecodeUTF8(m->reason_len ? m->reason : "",
                                                (Py_ssize_t)m->reason_len, "strict");
        return reason ? Py_BuildValue("(OiN)", k_close, m->close_code, reason) : NULL;
    }
    case WS_OP_PING:
        return Py_BuildValue("(Oy#)", k_ping, data, (Py_ssize_t)m->len);
    default: /* WS_OP_PONG: the reader hands out no other opcode */
        return Py_BuildValue("(Oy#)", k_pong, data, (Py_ssize_t)m->len);
    }
}

/* Appends item to list, stealing the reference; -1 with an exception. */
static int append_item(PyObject *list, PyObject *item)
{
    if (item == NULL)
        return -1;
    int rc = PyList_Append(list, item);
    Py_DECREF(item);
    return rc;
}

static PyObject *codec_feed(WsClientCodecObject *self, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *out = PyList_New(0);
    if (out == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    self->in.len = 0;
    if (db_buf_append(&self->in, view.buf, (size_t)view.len) < 0) {
        PyBuffer_Release(&view);
        Py_DECREF(out);
        return PyErr_NoMemory();
    }
    PyBuffer_Release(&view);
    uint8_t *p = (uint8_t *)self->in.data;
    size_t left = self->in.len;
    for (;;) {
        ws_read_t m;
        size_t used = 0;
        int rc = ws_reader_next(&self->reader, p, left, &used, &m);
        if (p != NULL)
            p += used;
        left -= used;
        if (rc == 0)
            break;
        if (rc < 0) {
            /* The connection is failed (§7.1.7) with this code; the caller closes. */
            if (append_item(out, Py_BuildValue("(Ois)", k_error, ws_close_code(rc),
                                               ws_error_message(rc))) < 0)
                goto error;
            break;
        }
        if (append_item(out, read_item(&m)) < 0)
            goto error;
    }
    /* The copy is not kept beyond 64 KiB (a large message's bytes would stay otherwise). */
    if (self->in.cap > 64 * 1024)
        db_buf_free(&self->in);
    return out;
error:
    Py_DECREF(out);
    return NULL;
}

/* 4 bytes for a masking key (§5.3), or -1 with OSError. */
static int mask_key(uint8_t key[4])
{
    size_t got = 0;
    while (got < 4) {
        ssize_t n = getrandom(key + got, 4 - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        got += (size_t)n;
    }
    return 0;
}

/* A bytes object holding one masked frame of payload[0..len); NULL with an exception. */
static PyObject *masked_frame(int opcode, const void *payload, size_t len)
{
    uint8_t key[4];
    size_t size = ws_frame_size(len, 1);
    if (size == 0 || size > PY_SSIZE_T_MAX)
        return PyErr_NoMemory();
    if (mask_key(key) < 0)
        return NULL;
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
    if (out == NULL)
        return NULL;
    int64_t n = ws_write_masked_frame((uint8_t *)PyBytes_AS_STRING(out), opcode, payload, len, key);
    if (n < 0) {
        Py_DECREF(out);
        PyErr_Format(PyExc_ValueError, "cannot write that frame: %s", ws_error_message((int)n));
        return NULL;
    }
    return out;
}

static PyObject *codec_frame(WsClientCodecObject *self, PyObject *args)
{
    (void)self;
    int opcode;
    PyObject *payload;
    if (!PyArg_ParseTuple(args, "iO:frame", &opcode, &payload))
        return NULL;
    if (PyUnicode_Check(payload)) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(payload, &n);
        return s ? masked_frame(opcode, s, (size_t)n) : NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *out = masked_frame(opcode, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return out;
}

static PyObject *codec_close_frame(WsClientCodecObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"code", "reason", NULL};
    PyObject *code_obj = Py_None;
    const char *reason = "";
    Py_ssize_t reason_len = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|Os#:close_frame", kwlist, &code_obj, &reason,
                                     &reason_len))
        return NULL;
    int code = 0;
    if (code_obj != Py_None) {
        long value = PyLong_AsLong(code_obj);
        if (value == -1 && PyErr_Occurred())
            return NULL;
        /* Out of range: refused below as any code ws_close_code_valid refuses. */
        code = value < 0 || value > 65535 ? -1 : (int)value;
    }
    uint8_t body[125];
    int n = ws_close_payload(body, code, reason, (size_t)reason_len);
    if (n < 0) {
        PyErr_Format(PyExc_ValueError, "no close frame for code %d and a %zd-byte reason: %s", code,
                     reason_len, ws_error_message(n));
        return NULL;
    }
    return masked_frame(WS_OP_CLOSE, body, (size_t)n);
}

static PyMethodDef codec_methods[] = {
    {"feed", (PyCFunction)codec_feed, METH_O,
     "feed(data) -> list of ('text', str), ('bytes', bytes), ('close', code, reason), "
     "('ping', bytes), ('pong', bytes), ('error', close_code, message)"},
    {"frame", (PyCFunction)codec_frame, METH_VARARGS,
     "frame(opcode, payload) -> bytes: one masked client frame"},
    {"close_frame", (PyCFunction)(void (*)(void))codec_close_frame, METH_VARARGS | METH_KEYWORDS,
     "close_frame(code=None, reason='') -> bytes: a masked close frame"},
    {NULL, NULL, 0, NULL},
};

PyTypeObject WsClientCodec_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "data_bridge._core.WsClientCodec",
    .tp_basicsize = sizeof(WsClientCodecObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "WsClientCodec(*, max_size=0): the client end of a WebSocket: reads a server's "
              "frames into messages, writes masked frames (RFC 6455).",
    .tp_new = codec_new,
    .tp_init = (initproc)codec_init,
    .tp_dealloc = (destructor)codec_dealloc,
    .tp_methods = codec_methods,
};

int ws_peer_module_init(PyObject *module)
{
    if ((k_text = PyUnicode_InternFromString("text")) == NULL ||
        (k_bytes = PyUnicode_InternFromString("bytes")) == NULL ||
        (k_close = PyUnicode_InternFromString("close")) == NULL ||
        (k_ping = PyUnicode_InternFromString("ping")) == NULL ||
        (k_pong = PyUnicode_InternFromString("pong")) == NULL ||
        (k_error = PyUnicode_InternFromString("error")) == NULL)
        return -1;
    if (PyType_Ready(&WsClientCodec_Type) < 0)
        return -1;
    return PyModule_AddObjectRef(module, "WsClientCodec", (PyObject *)&WsClientCodec_Type);
}
