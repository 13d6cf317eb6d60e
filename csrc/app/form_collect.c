/*
 * The parts of a multipart/form-data body as Python objects, collected from csrc/form's
 * callbacks. One collector serves every way a body arrives: whole in one piece (the
 * native binder's Form() fields, a Request received whole) and piece by piece (a streamed
 * body read by _core.MultipartParser in C, or fed to it from Python), so each gives the
 * same parts: a body received whole is the single-piece case.
 *
 * A part becomes the tuple (name, filename or None, content_type or None, [(header name,
 * value), ...], content, size). content is bytes, except for a file part larger than
 * spool_max when the collector has a spool callable: that content goes to the file object
 * spool() returns (a SpooledTemporaryFile already rolled over to disk, as Starlette's
 * UploadFile would hold it past its spooling size), written with write(2) on its
 * descriptor and left positioned at its end. Python code runs per part, never per block.
 *
 * Copies. The parser hands a part's data as slices of the piece being fed (form.h), and
 * within one piece those slices are consecutive, so the collector keeps the current run
 * as a pointer and a length and copies it once: at the end of the part when the piece
 * holds all of it (the bytes object made at its exact size), else when the piece ends (the
 * run appended to the part's bytes object). That object is allocated for the size the part
 * can still reach (the rest of a body of known length, bounded by spool_max or the field
 * limit), so a 1 MiB upload streamed in 64 KiB pieces is one allocation and one memcpy per
 * piece; without a known length it doubles. Bytes held back by the parser at the end of a
 * piece (a possible delimiter, form.h) come from its own copy and are appended at once.
 *
 * Direct reads. Better still, a streamed body's next piece can be read straight into the
 * room left in the current file part's buffer (app_form_collect_dest, the server's
 * server_conn_body_read_into), a gap kept in front for bytes the parser holds back: the
 * run then already sits where it belongs and appending it copies nothing. Such a piece may
 * also hold the part's end and what follows (the next part, the close delimiter), which
 * the parser reads after the part ended: the part's buffer is trimmed only once the feed
 * is over (the part "held" until then, and inserted in its place among the parts).
 *
 * Errors: a malformed body or one over a limit is a ValueError: (message) for the 400s
 * Starlette answers, (message, 413) for the size limits it does not have (max_file_size,
 * max_size). A callback that fails keeps its own Python exception (a failed write(2) is an
 * OSError).
 */
#include <errno.h>
#include <unistd.h>

#include "app/app_internal.h"

/* The first allocation of a part's content when the body's length is not known. */
#define CONTENT_FIRST 65536
/* The least room worth a direct read (less comes through the window). */
#define DIRECT_MIN 4096

static PyObject *text(const char *s, size_t n)
{
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, "replace");
}

static int on_part_begin(void *user)
{
    app_form_collect_t *c = user;
    c->run = NULL;
    c->run_len = 0;
    c->content_len = 0;
    c->size = 0;
    Py_CLEAR(c->content);
    Py_XSETREF(c->headers, PyList_New(0));
    return c->headers == NULL;
}

static int on_header(void *user, const char *name, size_t name_len, const char *value,
                     size_t value_len)
{
    app_form_collect_t *c = user;
    PyObject *pair = Py_BuildValue("(NN)", PyUnicode_DecodeLatin1(name, (Py_ssize_t)name_len, NULL),
                                   text(value, value_len));
    int r = pair ? PyList_Append(c->headers, pair) : -1;
    Py_XDECREF(pair);
    return r != 0;
}

static int on_headers_complete(void *user, const form_part_t *part)
{
    app_form_collect_t *c = user;
    c->is_file = part->has_filename;
    if (part->has_filename ? ++c->files > c->max_files : ++c->fields > c->max_fields) {
        /* Starlette's messages; the caller answers 400 with them. */
        if (part->has_filename)
            PyErr_Format(PyExc_ValueError, "Too many files. Maximum number of files is %zu.",
                         c->max_files);
        else
            PyErr_Format(PyExc_ValueError, "Too many fields. Maximum number of fields is %zu.",
                         c->max_fields);
        return 1;
    }
    Py_XSETREF(c->name, text(part->name, part->name_len));
    Py_XSETREF(c->filename,
               part->has_filename ? text(part->filename, part->filename_len) : Py_NewRef(Py_None));
    Py_XSETREF(c->ctype, part->content_type ? text(part->content_type, part->content_type_len)
                                            : Py_NewRef(Py_None));
    return c->name == NULL || c->filename == NULL || c->ctype == NULL;
}

/* Writes all of data to the rolled-over file, without the GIL (a disk may block; the loop
 * waits either way, an executor thread need not). */
static int write_all(app_form_collect_t *c, const char *data, size_t len)
{
    int err = 0;
    Py_BEGIN_ALLOW_THREADS while (len > 0)
    {
        ssize_t n = write(c->fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err = errno;
            break;
        }
        data += n;
        len -= (size_t)n;
    }
    Py_END_ALLOW_THREADS if (err == 0) return 0;
    errno = err;
    PyErr_SetFromErrno(PyExc_OSError);
    return -1;
}

/* The part outgrew spool_max: its file is made, what was collected goes to it, then data. */
static int roll_over(app_form_collect_t *c, const char *data, size_t len)
{
    PyObject *file = PyObject_CallNoArgs(c->spool);
    if (file == NULL)
        return -1;
    int fd = PyObject_AsFileDescriptor(file);
    if (fd < 0) {
        Py_DECREF(file);
        return -1;
    }
    /* Closed with the collector's files from here on (app_form_collect_close). */
    c->file = file;
    c->fd = fd;
    if (c->content_len > 0 && write_all(c, PyBytes_AS_STRING(c->content), c->content_len) < 0)
        return -1;
    Py_CLEAR(c->content);
    c->content_len = 0;
    return write_all(c, data, len);
}

/* The most a part's content can still need, counted from at (in the piece, or its start):
 * the rest of a body of known length; 0 when the length is not known. */
static uint64_t body_left(const app_form_collect_t *c, const char *at)
{
    uint64_t pos = c->fed;
    if ((uintptr_t)at >= (uintptr_t)c->piece && (uintptr_t)at < (uintptr_t)c->piece_end)
        pos += (uint64_t)(at - c->piece);
    return c->total > pos ? c->total - pos : 0;
}

/* Whether p points into the current part's bytes object (a piece read into it). */
static int in_content(const app_form_collect_t *c, const char *p)
{
    if (c->content == NULL)
        return 0;
    uintptr_t b = (uintptr_t)PyBytes_AS_STRING(c->content), a = (uintptr_t)p;
    return a >= b && a < b + (uintptr_t)PyBytes_GET_SIZE(c->content);
}

/* Room in the part's bytes object for need bytes: allocated for what the part can reach,
 * or grown (in place, the object being ours alone) by doubling. */
static int reserve(app_form_collect_t *c, size_t need, const char *at)
{
    size_t cap = c->content != NULL ? (size_t)PyBytes_GET_SIZE(c->content) : 0;
    if (need <= cap)
        return 0;
    if (in_content(c, c->piece)) {
        /* A piece read into the buffer never holds more than its room: growing (moving)
         * the buffer under the parser would be a bug, not a case to handle. */
        PyErr_SetString(PyExc_SystemError, "multipart content outgrew its direct read");
        return -1;
    }
    uint64_t bound = !c->is_file ? c->max_part_size : c->spool != NULL ? c->spool_max : UINT64_MAX;
    uint64_t want = cap > 0 ? 2 * (uint64_t)cap : body_left(c, at);
    if (want == 0)
        want = CONTENT_FIRST;
    if (want > bound)
        want = bound;
    if (want < need)
        want = need;
    if (want > PY_SSIZE_T_MAX) {
        PyErr_NoMemory();
        return -1;
    }
    if (c->content == NULL) {
        c->content = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)want);
        return c->content != NULL ? 0 : -1;
    }
    /* On failure _PyBytes_Resize frees the object and sets MemoryError. */
    return _PyBytes_Resize(&c->content, (Py_ssize_t)want);
}

/* Appends data to the part's content: its bytes object, or its file once rolled over. */
static int append(app_form_collect_t *c, const char *data, size_t len)
{
    if (len == 0)
        return 0;
    if (c->fd >= 0)
        return write_all(c, data, len);
    size_t need = c->content_len + len;
    if (c->is_file && c->spool != NULL && need > c->spool_max)
        return roll_over(c, data, len);
    if (reserve(c, need, data) < 0)
        return -1;
    /* A run read into this very place (a direct read) is there already; bytes of a direct
     * piece further on (after held-back bytes that turned out to be a delimiter) move
     * down within the buffer. */
    char *dst = PyBytes_AS_STRING(c->content) + c->content_len;
    if (dst != data)
        memmove(dst, data, len);
    c->content_len = need;
    return 0;
}

static int flush_run(app_form_collect_t *c)
{
    const char *run = c->run;
    size_t n = c->run_len;
    c->run = NULL;
    c->run_len = 0;
    return run != NULL ? append(c, run, n) : 0;
}

static int on_part_data(void *user, const char *data, size_t len)
{
    app_form_collect_t *c = user;
    c->size += len;
    uintptr_t d = (uintptr_t)data, b = (uintptr_t)c->piece, e = (uintptr_t)c->piece_end;
    int in_piece = d >= b && d <= e && len <= e - d;
    if (in_piece && c->run != NULL && data == c->run + c->run_len) {
        c->run_len += len;
        return 0;
    }
    if (flush_run(c) < 0)
        return 1;
    if (in_piece) {
        c->run = data;
        c->run_len = len;
        return 0;
    }
    return append(c, data, len) < 0;
}

static int on_part_end(void *user)
{
    app_form_collect_t *c = user;
    PyObject *content;
    int spills = c->is_file && c->spool != NULL && c->run_len > c->spool_max;
    if (c->content == NULL && c->fd < 0 && !spills) {
        /* All of it in one run of the piece: one copy, at its exact size. */
        content = PyBytes_FromStringAndSize(c->run != NULL ? c->run : "", (Py_ssize_t)c->run_len);
        c->run = NULL;
        c->run_len = 0;
    } else if (flush_run(c) < 0) {
        return 1;
    } else if (c->fd >= 0) {
        content = c->file; /* the reference moves into the part */
        c->file = NULL;
        c->fd = -1;
    } else if (in_content(c, c->piece)) {
        /* The parser reads on in this buffer: trimmed after the feed (release_held). */
        c->held = Py_BuildValue("(OOOOK)", c->name, c->filename, c->ctype, c->headers,
                                (unsigned long long)c->size);
        if (c->held == NULL)
            return 1;
        c->held_content = c->content;
        c->content = NULL;
        c->held_len = c->content_len;
        c->held_index = PyList_GET_SIZE(c->parts);
        return 0;
    } else {
        if (_PyBytes_Resize(&c->content, (Py_ssize_t)c->content_len) < 0)
            return 1; /* c->content was freed */
        content = c->content;
        c->content = NULL;
    }
    if (content == NULL)
        return 1;
    PyObject *part = Py_BuildValue("(OOOONK)", c->name, c->filename, c->ctype, c->headers, content,
                                   (unsigned long long)c->size);
    int r = part != NULL ? PyList_Append(c->parts, part) : -1;
    Py_XDECREF(part);
    return r != 0;
}

int app_form_collect_init(app_form_collect_t *c, const char *ctype, size_t ctype_len,
                          const app_form_limits_t *lim, uint64_t max_file_size, uint64_t max_size)
{
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    c->max_files = lim->max_files;
    c->max_fields = lim->max_fields;
    c->max_part_size = lim->max_part_size;
    form_limits_t limits;
    form_limits_default(&limits);
    /* One more part than the two counts allow reaches on_headers_complete, which names the
     * count that was exceeded. */
    limits.max_parts = lim->max_files + lim->max_fields + 1;
    limits.max_field_size = lim->max_part_size;
    if (max_file_size)
        limits.max_file_size = max_file_size;
    if (max_size)
        limits.max_body = max_size;
    if ((c->parts = PyList_New(0)) == NULL)
        return -1;
    form_callbacks_t cbs = {on_part_begin, on_header,   on_headers_complete,
                            on_part_data,  on_part_end, NULL};
    int err = 0;
    c->parser = form_multipart_new(ctype, ctype_len, &limits, &cbs, c, &err);
    if (c->parser == NULL) {
        app_form_collect_error(c, err);
        return -1;
    }
    return 0;
}

void app_form_collect_error(const app_form_collect_t *c, int code)
{
    if (PyErr_Occurred())
        return; /* a callback's own exception */
    if (code == FORM_E_FIELD_TOO_LARGE) {
        PyErr_Format(PyExc_ValueError, "Part exceeded maximum size of %lluKB.",
                     (unsigned long long)(c->max_part_size / 1024));
    } else if (code == FORM_E_FILE_TOO_LARGE || code == FORM_E_BODY_TOO_LARGE) {
        PyObject *args =
            Py_BuildValue("(si)",
                          code == FORM_E_FILE_TOO_LARGE ? "File exceeded the maximum upload size."
                                                        : "Form exceeded the maximum size.",
                          413);
        if (args != NULL)
            PyErr_SetObject(PyExc_ValueError, args);
        Py_XDECREF(args);
    } else if (code == FORM_E_NO_MEMORY) {
        PyErr_NoMemory();
    } else {
        PyErr_SetString(PyExc_ValueError, form_error_message(code));
    }
}

/* The held part (see on_part_end), its content trimmed, goes to its place among the parts. */
static int release_held(app_form_collect_t *c)
{
    PyObject *held = c->held, *content = c->held_content;
    c->held = NULL;
    c->held_content = NULL;
    int r = -1;
    /* On failure _PyBytes_Resize frees the object and sets MemoryError. */
    if (_PyBytes_Resize(&content, (Py_ssize_t)c->held_len) == 0) {
        PyObject *part =
            Py_BuildValue("(OOOOOO)", PyTuple_GET_ITEM(held, 0), PyTuple_GET_ITEM(held, 1),
                          PyTuple_GET_ITEM(held, 2), PyTuple_GET_ITEM(held, 3), content,
                          PyTuple_GET_ITEM(held, 4));
        r = part != NULL ? PyList_Insert(c->parts, c->held_index, part) : -1;
        Py_XDECREF(part);
        Py_DECREF(content);
    }
    Py_DECREF(held);
    return r;
}

int app_form_collect_feed(app_form_collect_t *c, const char *data, size_t len)
{
    c->piece = data;
    c->piece_end = data + len;
    int r = form_multipart_feed(c->parser, data, len);
    /* The piece is the caller's: what is left of the run is copied before it goes, and
     * only then may a buffer the piece was read into be trimmed. */
    if (r >= 0 && flush_run(c) < 0)
        r = FORM_E_CALLBACK;
    if (c->held != NULL && release_held(c) < 0 && r >= 0)
        r = FORM_E_CALLBACK;
    c->fed += len;
    c->piece = c->piece_end = NULL;
    if (r < 0) {
        app_form_collect_error(c, r);
        return -1;
    }
    return r;
}

int app_form_collect_dest(app_form_collect_t *c, char **dst, size_t *cap)
{
    size_t held;
    if (!c->is_file || c->content == NULL || c->fd >= 0 || c->run != NULL ||
        !form_multipart_in_content(c->parser, &held))
        return 0;
    size_t size = (size_t)PyBytes_GET_SIZE(c->content), at = c->content_len + held;
    if (at >= size || size - at < DIRECT_MIN)
        return 0;
    *dst = PyBytes_AS_STRING(c->content) + at;
    *cap = size - at;
    return 1;
}

PyObject *app_form_collect_finish(app_form_collect_t *c)
{
    int r = form_multipart_finish(c->parser);
    if (r < 0) {
        app_form_collect_error(c, r);
        return NULL;
    }
    return Py_NewRef(c->parts);
}

/* Closes one file object, keeping an exception already set (and reporting its own). */
static void close_file(PyObject *file)
{
    PyObject *exc = pyloop_fetch_exception();
    PyObject *r = PyObject_CallMethod(file, "close", NULL);
    if (r == NULL)
        PyErr_WriteUnraisable(file);
    Py_XDECREF(r);
    pyloop_restore_exception(exc);
}

void app_form_collect_close(app_form_collect_t *c)
{
    if (c->file != NULL) {
        close_file(c->file);
        Py_CLEAR(c->file);
        c->fd = -1;
    }
    PyObject *parts = c->parts;
    for (Py_ssize_t i = 0; parts != NULL && i < PyList_GET_SIZE(parts); i++) {
        PyObject *content = PyTuple_GET_ITEM(PyList_GET_ITEM(parts, i), 4);
        if (!PyBytes_Check(content))
            close_file(content);
    }
}

int app_form_collect_traverse(app_form_collect_t *c, visitproc visit, void *arg)
{
    Py_VISIT(c->parts);
    Py_VISIT(c->headers);
    Py_VISIT(c->name);
    Py_VISIT(c->filename);
    Py_VISIT(c->ctype);
    Py_VISIT(c->spool);
    Py_VISIT(c->file);
    Py_VISIT(c->held);
    return 0;
}

void app_form_collect_clear(app_form_collect_t *c)
{
    Py_CLEAR(c->parts);
    Py_CLEAR(c->headers);
    Py_CLEAR(c->name);
    Py_CLEAR(c->filename);
    Py_CLEAR(c->ctype);
    Py_CLEAR(c->spool);
    Py_CLEAR(c->file);
    Py_CLEAR(c->content);
    Py_CLEAR(c->held);
    Py_CLEAR(c->held_content);
    c->fd = -1;
}

void app_form_collect_free(app_form_collect_t *c)
{
    form_multipart_free(c->parser);
    c->parser = NULL;
    app_form_collect_clear(c);
}

PyObject *app_multipart_parts(const char *ctype, size_t ctype_len, const char *body, size_t len,
                              const app_form_limits_t *lim)
{
    app_form_collect_t c;
    PyObject *result = NULL;
    if (app_form_collect_init(&c, ctype, ctype_len, lim, 0, 0) == 0) {
        c.total = len;
        if (app_form_collect_feed(&c, body, len) >= 0)
            result = app_form_collect_finish(&c);
    }
    app_form_collect_free(&c);
    return result;
}
