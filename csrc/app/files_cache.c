/*
 * _core.FileCache: StaticFiles answered without Python. The Python StaticFiles
 * (api/staticfiles.py) decides every request it sees: it resolves the path under its
 * directory, refuses what leaves it, computes the file's headers as Starlette does (content
 * type, Last-Modified, ETag) and, for a file it serves, remembers here the request path
 * it answered, the file's full path, the stat() identity it computed the headers from and
 * the header lines of its 200 and of its 304. The next request for the same path is
 * answered in C (app_files_answer, called by app_dispatch for a StaticFiles route before
 * any binding): the file is opened, fstat()ed and served only when it is still the same
 * file (device, inode, size and mtime in nanoseconds: the inputs of the headers), with the
 * remembered lines; a 304 when If-None-Match lists its ETag (files_etag_listed, the Python
 * rules) or If-Modified-Since repeats its Last-Modified; the body by sendfile(2)
 * (server/sendfile.c). Anything else goes to Python as before: a path not remembered, a
 * changed or vanished file, a Range header, an If-Modified-Since that needs a date
 * comparison, the server's GZip policy.
 *
 * Safety: the remembered path was checked by Python to stay under the directory. Without
 * follow_symlink it is a realpath (no symbolic link in it), and it is opened with openat2's
 * RESOLVE_NO_SYMLINKS, so a link put in its way later sends the request back to Python's
 * check; with follow_symlink, Python allowed links and a plain open(2) follows them as
 * Python's would. The inode comparison means only the file Python approved is ever sent.
 * Where openat2(2) does not exist (Linux before 5.6: ENOSYS), such a cache answers nothing.
 *
 * Memory: FILE_CACHE_SLOTS entries, direct-mapped by a hash of the request path (a new
 * path replaces the one in its slot); each entry is one allocation.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "app/app_internal.h"
#include "files/files.h"

#define FILE_CACHE_SLOTS 512
/* Longest request path looked up (a longer one goes to Python). */
#define FILE_KEY_MAX 1024

typedef struct {
    char *mem; /* one allocation holding the strings below; NULL: the slot is empty */
    const char *key, *path, *lines, *nm_lines, *etag, *last_modified;
    size_t key_len, lines_len, nm_len, etag_len, lm_len;
    uint64_t dev, ino, size;
    long long mtime_ns;
} file_entry_t;

typedef struct {
    PyObject_HEAD
    int follow_symlink;
    file_entry_t slots[FILE_CACHE_SLOTS];
} FileCacheObject;

static int no_openat2; /* the kernel has no openat2(2) */

static size_t slot_of(const char *key, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)key[i]) * 1099511628211ull;
    return (size_t)(h % FILE_CACHE_SLOTS);
}

static void entry_clear(file_entry_t *e)
{
    free(e->mem);
    memset(e, 0, sizeof(*e));
}

/* Copies src[0..n) to *p, NUL-terminated, and returns where it went. */
static const char *put(char **p, const char *src, size_t n)
{
    char *dst = *p;
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
    *p += n + 1;
    return dst;
}

/* remember(key, path, dev, ino, size, mtime_ns, headers, not_modified_headers, etag,
 * last_modified) */
static PyObject *cache_remember(FileCacheObject *self, PyObject *args)
{
    PyObject *key, *path, *headers, *nm_headers, *etag, *lm;
    unsigned long long dev, ino, size;
    long long mtime_ns;
    if (!PyArg_ParseTuple(args, "UUKKKLOOUU:remember", &key, &path, &dev, &ino, &size, &mtime_ns,
                          &headers, &nm_headers, &etag, &lm))
        return NULL;
    Py_ssize_t kn, pn, en, ln;
    const char *k = PyUnicode_AsUTF8AndSize(key, &kn);
    const char *p = k ? PyUnicode_AsUTF8AndSize(path, &pn) : NULL;
    const char *e = p ? PyUnicode_AsUTF8AndSize(etag, &en) : NULL;
    const char *l = e ? PyUnicode_AsUTF8AndSize(lm, &ln) : NULL;
    if (l == NULL) {
        /* A str that is not UTF-8 (surrogates): such a path is simply not remembered. */
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    if (kn > FILE_KEY_MAX || strlen(p) != (size_t)pn)
        Py_RETURN_NONE;
    db_buf_t lines, nm;
    db_buf_init(&lines);
    db_buf_init(&nm);
    int close = 0;
    PyObject *rv = NULL;
    /* The same lines (and checks) the Python path's response would give the server. */
    if (respond_header_lines(headers, &lines, &close) < 0 ||
        respond_header_lines(nm_headers, &nm, &close) < 0)
        goto done;
    if (close) {
        rv = Py_NewRef(Py_None); /* "connection: close" among them: leave it to Python */
        goto done;
    }
    size_t total = (size_t)kn + (size_t)pn + lines.len + nm.len + (size_t)en + (size_t)ln + 6;
    file_entry_t *slot = &self->slots[slot_of(k, (size_t)kn)];
    char *mem = malloc(total);
    if (mem == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    entry_clear(slot);
    char *w = mem;
    slot->mem = mem;
    slot->key = put(&w, k, (size_t)kn);
    slot->key_len = (size_t)kn;
    slot->path = put(&w, p, (size_t)pn);
    slot->lines = put(&w, lines.data, lines.len);
    slot->lines_len = lines.len;
    slot->nm_lines = put(&w, nm.data, nm.len);
    slot->nm_len = nm.len;
    slot->etag = put(&w, e, (size_t)en);
    slot->etag_len = (size_t)en;
    slot->last_modified = put(&w, l, (size_t)ln);
    slot->lm_len = (size_t)ln;
    slot->dev = dev;
    slot->ino = ino;
    slot->size = size;
    slot->mtime_ns = mtime_ns;
    rv = Py_NewRef(Py_None);
done:
    db_buf_free(&lines);
    db_buf_free(&nm);
    return rv;
}

static PyObject *cache_clear_method(FileCacheObject *self, PyObject *unused)
{
    (void)unused;
    for (size_t i = 0; i < FILE_CACHE_SLOTS; i++)
        entry_clear(&self->slots[i]);
    Py_RETURN_NONE;
}

static PyObject *cache_len(FileCacheObject *self, void *unused)
{
    (void)unused;
    Py_ssize_t n = 0;
    for (size_t i = 0; i < FILE_CACHE_SLOTS; i++)
        n += self->slots[i].mem != NULL;
    return PyLong_FromSsize_t(n);
}

static int cache_init(FileCacheObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"follow_symlink", NULL};
    int follow = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|p:FileCache", kwlist, &follow))
        return -1;
    self->follow_symlink = follow;
    return 0;
}

static void cache_dealloc(FileCacheObject *self)
{
    for (size_t i = 0; i < FILE_CACHE_SLOTS; i++)
        entry_clear(&self->slots[i]);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Opens a remembered path as described in the opening comment; -1 when it cannot be
 * (Python then decides). */
static int open_remembered(const FileCacheObject *c, const char *path)
{
    int fd;
    if (c->follow_symlink) {
        do {
            fd = open(path, O_RDONLY | O_CLOEXEC);
        } while (fd < 0 && errno == EINTR);
        return fd;
    }
    if (no_openat2)
        return -1;
    struct open_how how = {.flags = O_RDONLY | O_CLOEXEC, .resolve = RESOLVE_NO_SYMLINKS};
    do {
        fd = (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof(how));
    } while (fd < 0 && errno == EINTR);
    if (fd < 0 && errno == ENOSYS)
        no_openat2 = 1;
    return fd;
}

int app_files_answer(PyObject *cache, server_conn_t *conn, server_request_t *req,
                     const router_match_t *m)
{
    FileCacheObject *c = (FileCacheObject *)cache;
    const http_request_t *h = req->head;
    if (m->nparams == 0 || http_find_header(h, "range", 5) != NULL)
        return 0;
    /* The {path:path} parameter, a slice of the decoded path (invoke.c) as the binder
     * hands it to StaticFiles. */
    const router_param_t *prm = &m->params[m->nparams - 1];
    if (prm->value_len > FILE_KEY_MAX)
        return 0;
    const char *key = prm->value;
    size_t key_len = prm->value_len;
    file_entry_t *e = &c->slots[slot_of(key, key_len)];
    if (e->mem == NULL || e->key_len != key_len || memcmp(e->key, key, key_len) != 0)
        return 0;
    int fd = open_remembered(c, e->path);
    if (fd < 0)
        return 0;
    struct stat st;
    long long mtime_ns;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_dev != e->dev ||
        (uint64_t)st.st_ino != e->ino || (uint64_t)st.st_size != e->size ||
        (mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000ll + st.st_mtim.tv_nsec) !=
            e->mtime_ns) {
        /* Another file now, or changed: Python looks again (and remembers it anew). */
        close(fd);
        entry_clear(e);
        return 0;
    }
    /* RFC 9110 §13.1.2: If-None-Match decides when present; otherwise If-Modified-Since
     * (§13.1.3), answered here only when it repeats Last-Modified (a later date needs
     * Python's date parsing: it is left to it). */
    int not_modified = 0;
    const http_header_t *inm = http_find_header(h, "if-none-match", 13);
    if (inm != NULL) {
        not_modified = files_etag_listed(inm->value, inm->value_len, e->etag, e->etag_len);
    } else {
        const http_header_t *ims = http_find_header(h, "if-modified-since", 17);
        if (ims != NULL && ims->value_len > 0) {
            if (ims->value_len != e->lm_len || memcmp(ims->value, e->last_modified, e->lm_len)) {
                close(fd);
                return 0;
            }
            not_modified = 1;
        }
    }
    if (not_modified) {
        close(fd);
        server_conn_respond(conn, 304, NULL, 0, e->nm_lines, e->nm_len, NULL, 0);
        return 1;
    }
    server_file_t *f = server_file_new(fd);
    if (f == NULL || server_file_add(f, NULL, 0, 0, e->size) < 0) {
        server_file_free(f);
        return 0;
    }
    int b = server_conn_file_begin(conn, 200, NULL, 0, e->lines, e->lines_len, f);
    if (b == SERVER_FILE_DECLINED) {
        server_file_free(f); /* compressed: the Python path streams it through GZip */
        return 0;
    }
    return 1;
}

static PyMethodDef cache_methods[] = {
    {"remember", (PyCFunction)cache_remember, METH_VARARGS,
     "remember(key, path, dev, ino, size, mtime_ns, headers, not_modified_headers, etag, "
     "last_modified): answer the request path key natively while path is that file."},
    {"clear", (PyCFunction)cache_clear_method, METH_NOARGS, "Forgets every path."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef cache_getset[] = {
    {"size", (getter)cache_len, NULL, "Paths remembered.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject FileCache_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "data_bridge._core.FileCache",
    .tp_basicsize = sizeof(FileCacheObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The files a StaticFiles served, answered again without Python.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)cache_init,
    .tp_dealloc = (destructor)cache_dealloc,
    .tp_methods = cache_methods,
    .tp_getset = cache_getset,
};
