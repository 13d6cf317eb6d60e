/*
 * Registers the app layer on data_bridge._core: the Server, Request and _Driver types and
 * configure(), through which the Python layer names its Response, HTTPException and
 * Request classes and its exception logger once at import time.
 */
#include "app/app_internal.h"

app_config_t app_cfg;

static PyObject *app_configure(PyObject *module, PyObject *args, PyObject *kw)
{
    (void)module;
    static char *kwlist[] = {"response_class", "http_exception_class", "request_class",
                             "log_exception", NULL};
    PyObject *resp, *exc, *req, *log;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOO", kwlist, &resp, &exc, &req, &log))
        return NULL;
    if (!PyType_Check(req) || !PyType_IsSubtype((PyTypeObject *)req, &Request_Type)) {
        PyErr_SetString(PyExc_TypeError, "request_class must subclass _core.Request");
        return NULL;
    }
    Py_XSETREF(app_cfg.response_class, Py_NewRef(resp));
    Py_XSETREF(app_cfg.http_exception_class, Py_NewRef(exc));
    Py_XSETREF(app_cfg.request_class, Py_NewRef(req));
    Py_XSETREF(app_cfg.log_exception, Py_NewRef(log));
    Py_RETURN_NONE;
}

static PyMethodDef app_functions[] = {
    {"configure", (PyCFunction)(void (*)(void))app_configure, METH_VARARGS | METH_KEYWORDS,
     "configure(response_class, http_exception_class, request_class, log_exception)"},
    {NULL, NULL, 0, NULL},
};

int app_module_init(PyObject *module)
{
    if (PyType_Ready(&Server_Type) < 0 || PyType_Ready(&Request_Type) < 0 ||
        PyType_Ready(&Driver_Type) < 0 || invoke_init() < 0)
        return -1;
    if (PyModule_AddObjectRef(module, "Server", (PyObject *)&Server_Type) < 0 ||
        PyModule_AddObjectRef(module, "Request", (PyObject *)&Request_Type) < 0 ||
        PyModule_AddObjectRef(module, "_Driver", (PyObject *)&Driver_Type) < 0 ||
        PyModule_AddFunctions(module, app_functions) < 0)
        return -1;
    return 0;
}
