/*
 * Registers the app layer on data_bridge._core: the Server, Request and _Driver types and
 * configure(), through which the Python layer names its Response, HTTPException,
 * Request and StreamingResponse classes, its exception logger and the coroutine starter
 * of streaming responses once at import time.
 */
#include "app/app_internal.h"

app_config_t app_cfg;

static PyObject *app_configure(PyObject *module, PyObject *args, PyObject *kw)
{
    (void)module;
    static char *kwlist[] = {
        "response_class",  "http_exception_class", "request_class",    "log_exception",
        "streaming_class", "stream_start",         "background_start", NULL};
    PyObject *resp, *exc, *req, *log, *streaming = NULL, *stream_start = NULL,
                                      *background_start = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOO|OOO", kwlist, &resp, &exc, &req, &log,
                                     &streaming, &stream_start, &background_start))
        return NULL;
    if (!PyType_Check(req) || !PyType_IsSubtype((PyTypeObject *)req, &Request_Type)) {
        PyErr_SetString(PyExc_TypeError, "request_class must subclass _core.Request");
        return NULL;
    }
    Py_XSETREF(app_cfg.response_class, Py_NewRef(resp));
    Py_XSETREF(app_cfg.http_exception_class, Py_NewRef(exc));
    Py_XSETREF(app_cfg.request_class, Py_NewRef(req));
    Py_XSETREF(app_cfg.log_exception, Py_NewRef(log));
    Py_XSETREF(app_cfg.streaming_class, Py_XNewRef(streaming));
    Py_XSETREF(app_cfg.stream_start, Py_XNewRef(stream_start));
    Py_XSETREF(app_cfg.background_start, Py_XNewRef(background_start));
    Py_RETURN_NONE;
}

/* set_foreign_responses(cls, convert): results that are instances of cls (Starlette's
 * Response) are answered as convert(result), a Response of ours. */
static PyObject *app_set_foreign_responses(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *cls, *convert;
    if (!PyArg_ParseTuple(args, "OO:set_foreign_responses", &cls, &convert))
        return NULL;
    if (!PyType_Check(cls) || !PyCallable_Check(convert)) {
        PyErr_SetString(PyExc_TypeError, "set_foreign_responses(class, callable)");
        return NULL;
    }
    Py_XSETREF(app_cfg.foreign_response_class, Py_NewRef(cls));
    Py_XSETREF(app_cfg.foreign_convert, Py_NewRef(convert));
    Py_RETURN_NONE;
}

/* list_of_exact(value, cls): value is a list whose items are all instances of exactly cls
 * (not subclasses). The responder asks it of every list[Model] response before handing the
 * list to the native encoder, which writes each model by its own class's fields: a
 * generator expression doing this in Python costs ~90 ns per item, this ~1 ns. */
static PyObject *app_list_of_exact(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *value, *cls;
    if (!PyArg_ParseTuple(args, "OO:list_of_exact", &value, &cls))
        return NULL;
    if (!PyList_CheckExact(value))
        Py_RETURN_FALSE;
    /* No Python code runs in this loop, so the list cannot change under it. */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(value); i++) {
        if ((PyObject *)Py_TYPE(PyList_GET_ITEM(value, i)) != cls)
            Py_RETURN_FALSE;
    }
    Py_RETURN_TRUE;
}

/* Test hook for differential tests of the parser against another implementation: parses
 * one request head and returns a dict of what the server would see, or the negative
 * http_error_t code with its status. Not used by the server itself. */
static PyObject *app_parse_request(PyObject *module, PyObject *arg)
{
    (void)module;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    http_limits_t lim;
    http_limits_default(&lim);
    http_parser_t parser = {0};
    http_request_t *req = PyMem_Malloc(sizeof(*req));
    PyObject *res = NULL, *headers = NULL;
    if (req == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    int n = http_parse_request(&parser, view.buf, (size_t)view.len, &lim, req);
    if (n <= 0) {
        res = Py_BuildValue("{sisiss}", "error", n, "status", n ? http_error_status(n) : 0,
                            "message", n ? http_error_message(n) : "incomplete");
        goto done;
    }
    headers = PyList_New(0);
    if (headers == NULL)
        goto done;
    for (size_t i = 0; i < req->num_headers; i++) {
        PyObject *pair =
            Py_BuildValue("(y#y#)", req->headers[i].name, (Py_ssize_t)req->headers[i].name_len,
                          req->headers[i].value, (Py_ssize_t)req->headers[i].value_len);
        if (pair == NULL || PyList_Append(headers, pair) < 0) {
            Py_XDECREF(pair);
            goto done;
        }
        Py_DECREF(pair);
    }
    res = Py_BuildValue("{sisy#sy#sy#sy#sisSsLsisisisi}", "consumed", n, "method", req->method_str,
                        (Py_ssize_t)req->method_len, "target", req->target,
                        (Py_ssize_t)req->target_len, "path", req->path, (Py_ssize_t)req->path_len,
                        "query", req->query ? req->query : "", (Py_ssize_t)req->query_len,
                        "version_minor", req->version_minor, "headers", headers, "content_length",
                        (long long)req->content_length, "chunked", (int)req->chunked, "keep_alive",
                        (int)req->keep_alive, "expect_continue", (int)req->expect_continue,
                        "method_code", (int)req->method);
done:
    Py_XDECREF(headers);
    PyMem_Free(req);
    PyBuffer_Release(&view);
    return res;
}

static PyMethodDef app_functions[] = {
    {"_parse_request", (PyCFunction)app_parse_request, METH_O,
     "_parse_request(data) -> dict: parse one request head (a test hook)"},
    {"configure", (PyCFunction)(void (*)(void))app_configure, METH_VARARGS | METH_KEYWORDS,
     "configure(response_class, http_exception_class, request_class, log_exception, "
     "streaming_class=None, stream_start=None, background_start=None)"},
    {"set_foreign_responses", (PyCFunction)app_set_foreign_responses, METH_VARARGS,
     "set_foreign_responses(cls, convert): answer instances of cls as convert(result)"},
    {"list_of_exact", (PyCFunction)app_list_of_exact, METH_VARARGS,
     "list_of_exact(value, cls) -> bool: a list of instances of exactly cls"},
    {"parse_range", (PyCFunction)app_parse_range, METH_VARARGS,
     "parse_range(value, size) -> (kind, ranges or message): a Range header for a file"},
    {NULL, NULL, 0, NULL},
};

int app_module_init(PyObject *module)
{
    if (PyType_Ready(&Server_Type) < 0 || PyType_Ready(&Request_Type) < 0 ||
        PyType_Ready(&Driver_Type) < 0 || PyType_Ready(&Tail_Type) < 0 ||
        PyType_Ready(&StreamWriter_Type) < 0 || PyType_Ready(&FileCache_Type) < 0 ||
        PyType_Ready(&TLSContext_Type) < 0 || PyType_Ready(&MultipartParser_Type) < 0 ||
        PyType_Ready(&Binder_Type) < 0 || invoke_init() < 0 || respond_init() < 0 ||
        stream_init() < 0 || ws_session_init_type() < 0)
        return -1;
    if (PyModule_AddObjectRef(module, "Server", (PyObject *)&Server_Type) < 0 ||
        PyModule_AddObjectRef(module, "Request", (PyObject *)&Request_Type) < 0 ||
        PyModule_AddObjectRef(module, "_Driver", (PyObject *)&Driver_Type) < 0 ||
        PyModule_AddObjectRef(module, "_Tail", (PyObject *)&Tail_Type) < 0 ||
        PyModule_AddObjectRef(module, "_StreamWriter", (PyObject *)&StreamWriter_Type) < 0 ||
        PyModule_AddObjectRef(module, "FileCache", (PyObject *)&FileCache_Type) < 0 ||
        PyModule_AddObjectRef(module, "WebSocketSession", (PyObject *)&WsSession_Type) < 0 ||
        PyModule_AddObjectRef(module, "TLSContext", (PyObject *)&TLSContext_Type) < 0 ||
        PyModule_AddObjectRef(module, "MultipartParser", (PyObject *)&MultipartParser_Type) < 0 ||
        PyModule_AddObjectRef(module, "Binder", (PyObject *)&Binder_Type) < 0 ||
        PyModule_AddFunctions(module, app_functions) < 0 ||
        /* The bytes of one worker's metrics slot (server_metrics_t), for the supervisor. */
        PyModule_AddIntConstant(module, "METRICS_SLOT_SIZE", SERVER_METRICS_SLOT_SIZE) < 0 ||
        /* The router's method code of WebSocket routes, for add_route (app_internal.h). */
        PyModule_AddIntConstant(module, "METHOD_WEBSOCKET", APP_METHOD_WEBSOCKET) < 0)
        return -1;
    return 0;
}
