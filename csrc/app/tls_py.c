/*
 * data_bridge._core.TLSContext: a csrc/tls context made from uvicorn's --ssl-* settings,
 * and Server.set_tls(context). The object holds one reference to the context; a server given
 * it holds another (server.h: server_set_tls), so the Python object may go away while
 * connections still use it.
 */
#include "app/app_internal.h"
#include "tls/tls.h"

typedef struct {
    PyObject_HEAD
    tls_context_t *ctx;
} TLSContextObject;

/* A path (str, bytes or os.PathLike, as PyUnicode_FSConverter takes) or None (NULL). */
static int fs_path_or_none(PyObject *arg, void *out)
{
    if (arg == Py_None) {
        *(PyObject **)out = NULL;
        return 1;
    }
    return PyUnicode_FSConverter(arg, out);
}

static int tlsctx_init(TLSContextObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"certfile", "keyfile",     "password",    "ca_certs", "cert_reqs",
                             "ciphers",  "min_version", "max_version", NULL};
    PyObject *certfile = NULL, *keyfile = NULL, *ca_certs = NULL;
    const char *password = NULL, *ciphers = NULL;
    tls_config_t cfg = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|O&zO&izii:TLSContext", kwlist,
                                     PyUnicode_FSConverter, &certfile, fs_path_or_none, &keyfile,
                                     &password, fs_path_or_none, &ca_certs, &cfg.verify, &ciphers,
                                     &cfg.min_version, &cfg.max_version))
        goto done;
    cfg.certfile = PyBytes_AS_STRING(certfile);
    cfg.keyfile = keyfile ? PyBytes_AS_STRING(keyfile) : NULL;
    cfg.ca_certs = ca_certs ? PyBytes_AS_STRING(ca_certs) : NULL;
    cfg.password = password;
    cfg.ciphers = ciphers;
    char err[512];
    tls_context_t *ctx = tls_context_new(&cfg, err, sizeof(err));
    if (ctx == NULL) {
        PyErr_SetString(PyExc_OSError, err);
        goto done;
    }
    tls_context_unref(self->ctx); /* __init__ called again */
    self->ctx = ctx;
done:
    Py_XDECREF(certfile);
    Py_XDECREF(keyfile);
    Py_XDECREF(ca_certs);
    return self->ctx != NULL && !PyErr_Occurred() ? 0 : -1;
}

static void tlsctx_dealloc(TLSContextObject *self)
{
    tls_context_unref(self->ctx);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

PyTypeObject TLSContext_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "data_bridge._core.TLSContext",
    .tp_basicsize = sizeof(TLSContextObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "TLSContext(certfile, keyfile=None, password=None, ca_certs=None, cert_reqs=0, "
              "ciphers=None, min_version=0, max_version=0): certificates and settings for TLS "
              "connections (uvicorn's --ssl-* options); versions as 0x0303 (TLS 1.2), 0x0304 "
              "(1.3), 0 for the default (1.2 up to the highest). Raises OSError with what failed.",
    .tp_init = (initproc)tlsctx_init,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)tlsctx_dealloc,
};

PyObject *app_set_tls(ServerObject *self, PyObject *arg)
{
    tls_context_t *ctx = NULL;
    if (arg != Py_None) {
        if (!PyObject_TypeCheck(arg, &TLSContext_Type) || ((TLSContextObject *)arg)->ctx == NULL) {
            PyErr_SetString(PyExc_TypeError, "set_tls() takes a TLSContext or None");
            return NULL;
        }
        ctx = ((TLSContextObject *)arg)->ctx;
    }
    /* Applied now when serving (new connections get it; open ones keep theirs), else when
     * the server is made (server_ensure). */
    if (self->server != NULL && server_set_tls(self->server, ctx) < 0)
        return PyErr_NoMemory();
    if (ctx != NULL)
        tls_context_ref(ctx);
    tls_context_unref(self->tls);
    self->tls = ctx;
    /* Requests on it are https: request.url, redirects, HTTPSRedirectMiddleware. */
    self->secure = ctx != NULL;
    Py_RETURN_NONE;
}
