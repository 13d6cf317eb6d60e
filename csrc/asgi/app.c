/*
 * _core.AsgiApp: an ASGI 3 application and what the server needs to serve it (the loop,
 * the logger, root_path, the lifespan state). The Python layer (data_bridge/_serve.py)
 * makes one after the lifespan startup and hands it to Server.set_asgi(); the server then
 * dispatches every request to asgi_dispatch (call.c) with this object as its context.
 * Also registers the component on the extension module and makes its interned strings.
 */
#include "asgi/asgi_internal.h"
#include "loop/loop.h"

asgi_strings_t asgi_str;

int asgi_app_check(PyObject *obj)
{
    return PyObject_TypeCheck(obj, &AsgiApp_Type);
}

static int asgi_app_init(AsgiAppObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"app", "loop", "log", "root_path", "state", "mounted", NULL};
    PyObject *app, *loop, *log = NULL, *root_path = NULL, *state = Py_None;
    int mounted = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|$OUOp", kwlist, &app, &loop, &log, &root_path,
                                     &state, &mounted))
        return -1;
    if (!PyCallable_Check(app) || log == NULL || !PyCallable_Check(log)) {
        PyErr_SetString(PyExc_TypeError, "app and log must be callable");
        return -1;
    }
    if (!pyloop_check(loop)) {
        PyErr_SetString(PyExc_TypeError, "loop must be a data_bridge.pyloop.Loop");
        return -1;
    }
    if (state != Py_None && !PyDict_Check(state)) {
        PyErr_SetString(PyExc_TypeError, "state must be a dict or None");
        return -1;
    }
    Py_XSETREF(self->app, Py_NewRef(app));
    Py_XSETREF(self->loop, Py_NewRef(loop));
    Py_XSETREF(self->log, Py_NewRef(log));
    Py_XSETREF(self->root_path,
               root_path ? Py_NewRef(root_path) : PyUnicode_FromStringAndSize("", 0));
    Py_XSETREF(self->state, state == Py_None ? NULL : Py_NewRef(state));
    self->mounted = mounted;
    if (self->root_path == NULL)
        return -1;
    Py_XSETREF(self->root_path_raw, PyUnicode_AsUTF8String(self->root_path));
    return self->root_path_raw ? 0 : -1;
}

static int asgi_app_traverse(AsgiAppObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->app);
    Py_VISIT(self->loop);
    Py_VISIT(self->log);
    Py_VISIT(self->state);
    return 0;
}

static int asgi_app_clear(AsgiAppObject *self)
{
    Py_CLEAR(self->app);
    Py_CLEAR(self->log);
    Py_CLEAR(self->state);
    return 0;
}

static void asgi_app_dealloc(AsgiAppObject *self)
{
    PyObject_GC_UnTrack(self);
    asgi_app_clear(self);
    Py_CLEAR(self->loop);
    Py_CLEAR(self->root_path);
    Py_CLEAR(self->root_path_raw);
    for (int i = 0; i < 2; i++) {
        Py_CLEAR(self->hosts[i].str);
        Py_CLEAR(self->hosts[i].tuple);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *asgi_app_get_app(AsgiAppObject *self, void *unused)
{
    (void)unused;
    return Py_NewRef(self->app ? self->app : Py_None);
}

PyTypeObject AsgiApp_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "data_bridge._core.AsgiApp",
    .tp_basicsize = sizeof(AsgiAppObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "AsgiApp(app, loop, *, log, root_path='', state=None): an ASGI 3 application "
              "for Server.set_asgi(). log(message, exc_or_None) reports errors; state is the "
              "lifespan state, copied into each request's scope.",
    .tp_traverse = (traverseproc)asgi_app_traverse,
    .tp_clear = (inquiry)asgi_app_clear,
    .tp_dealloc = (destructor)asgi_app_dealloc,
    .tp_init = (initproc)asgi_app_init,
    .tp_new = PyType_GenericNew,
    .tp_getset =
        (PyGetSetDef[]){
            {"app", (getter)asgi_app_get_app, NULL, "The ASGI application.", NULL},
            {NULL, NULL, NULL, NULL, NULL},
        },
};

static int intern(PyObject **slot, const char *s)
{
    *slot = PyUnicode_InternFromString(s);
    return *slot ? 0 : -1;
}

static int make_strings(void)
{
    asgi_strings_t *S = &asgi_str;
    if (intern(&S->type, "type") < 0 || intern(&S->body, "body") < 0 ||
        intern(&S->more_body, "more_body") < 0 || intern(&S->status, "status") < 0 ||
        intern(&S->headers, "headers") < 0 || intern(&S->http_request, "http.request") < 0 ||
        intern(&S->http_disconnect, "http.disconnect") < 0 ||
        intern(&S->http_response_start, "http.response.start") < 0 ||
        intern(&S->http_response_body, "http.response.body") < 0 ||
        intern(&S->create_future, "create_future") < 0 ||
        intern(&S->create_task, "create_task") < 0 ||
        intern(&S->add_done_callback, "add_done_callback") < 0 ||
        intern(&S->set_result, "set_result") < 0 || intern(&S->done, "done") < 0 ||
        intern(&S->exception, "exception") < 0 || intern(&S->cancelled, "cancelled") < 0 ||
        intern(&S->await_, "__await__") < 0 || intern(&S->throw_, "throw") < 0 ||
        intern(&S->close, "close") < 0 || intern(&S->call_soon, "call_soon") < 0 ||
        intern(&S->path, "path") < 0 || intern(&S->set_exception, "set_exception") < 0 ||
        intern(&S->http_response_pathsend, "http.response.pathsend") < 0 ||
        intern(&S->k_extensions, "extensions") < 0 || intern(&S->k_asgi, "asgi") < 0 ||
        intern(&S->k_http_version, "http_version") < 0 || intern(&S->k_method, "method") < 0 ||
        intern(&S->k_scheme, "scheme") < 0 || intern(&S->k_path, "path") < 0 ||
        intern(&S->k_raw_path, "raw_path") < 0 || intern(&S->k_query_string, "query_string") < 0 ||
        intern(&S->k_root_path, "root_path") < 0 || intern(&S->k_client, "client") < 0 ||
        intern(&S->k_server, "server") < 0 || intern(&S->k_state, "state") < 0 ||
        intern(&S->v_http, "http") < 0 || intern(&S->v_https, "https") < 0 ||
        intern(&S->v_http10, "1.0") < 0 || intern(&S->v_http11, "1.1") < 0)
        return -1;
    for (int m = 0; m < HTTP_OTHER && m < 16; m++)
        if (intern(&S->methods[m], http_method_name((http_method_t)m)) < 0)
            return -1;
    /* asgi: {"version": "3.0", "spec_version": "2.4"} (main spec, "Legacy Applications"
     * and www spec's version history: 2.4 is the spec_version whose send() raises OSError
     * on a closed connection, which Starlette relies on instead of a disconnect task). */
    S->asgi_version = Py_BuildValue("{ssss}", "version", "3.0", "spec_version", "2.4");
    return S->asgi_version ? 0 : -1;
}

int asgi_module_init(PyObject *module)
{
    if (make_strings() < 0)
        return -1;
    if (PyType_Ready(&AsgiApp_Type) < 0 || PyType_Ready(&AsgiCall_Type) < 0 ||
        PyType_Ready(&AsgiAwaitable_Type) < 0 || ws_peer_module_init(module) < 0)
        return -1;
    return PyModule_AddObjectRef(module, "AsgiApp", (PyObject *)&AsgiApp_Type);
}
