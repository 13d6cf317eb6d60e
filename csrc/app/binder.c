/*
 * _core.Binder: a route's plan bound on demand rather than at dispatch. A route whose
 * APIRoute subclass overrides get_route_handler (FastAPI's "custom Request and APIRoute
 * class") is registered with a plan that only takes the Request; its handler runs first and
 * calls the original route handler with a Request of its choosing, whose body() may differ
 * from the bytes received (a gzip-decoding Request). That original handler
 * (routing.py: _RouteHandler) binds the route's real parameters here: the same binder as at
 * dispatch (bind.c), on the request's head and kept router match, with the body replaced by
 * the bytes the handler's Request gave, and the handler's Request object injected where a
 * parameter asks for the Request.
 *
 * Ownership: the Binder owns its plan (plan_free at dealloc). The request must still be
 * attached (its slices are valid until the request finishes, and the handler runs before
 * that); the body bytes are borrowed for the call.
 */
#include <string.h>

#include "app/app_internal.h"

typedef struct {
    PyObject_HEAD
    route_plan_t *plan;
    int needs_body; /* a parameter is bound from the body (JSON or form fields) */
} BinderObject;

static int binder_init(BinderObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"handler", "path",        "params", "strict_content_type",
                             "lenient", "form_limits", NULL};
    PyObject *handler, *path, *params;
    int strict = 1, lenient = 0;
    /* Starlette's defaults: 1000 files, 1000 fields, 1 MiB per field. */
    Py_ssize_t max_files = 1000, max_fields = 1000;
    unsigned long long max_part = 1024 * 1024;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OUO|$pp(nnK):Binder", kwlist, &handler, &path,
                                     &params, &strict, &lenient, &max_files, &max_fields,
                                     &max_part))
        return -1;
    if (!PyCallable_Check(handler)) {
        PyErr_SetString(PyExc_TypeError, "handler must be callable");
        return -1;
    }
    if (max_files < 0 || max_fields < 0) {
        PyErr_SetString(PyExc_ValueError, "form limits must be non-negative");
        return -1;
    }
    route_plan_t *plan = plan_build(handler, path, params, 200, NULL);
    if (plan == NULL)
        return -1;
    plan->strict_content_type = strict;
    plan->lenient = lenient && plan->nargs < APP_MAX_ARGS;
    plan->form_limits.max_files = (size_t)max_files;
    plan->form_limits.max_fields = (size_t)max_fields;
    plan->form_limits.max_part_size = max_part;
    self->needs_body = 0;
    for (int i = 0; i < plan->nargs; i++)
        self->needs_body |= plan->args[i].source == ARG_BODY || plan->args[i].source == ARG_FORM;
    plan_free(self->plan);
    self->plan = plan;
    return 0;
}

/* call(request, body, request_obj): binds the route's parameters from `request` (a Request
 * the server made for this route, still attached) with `body` (bytes, or None for the
 * received body) and calls the handler. Returns (True, the handler's result) or (False,
 * the binding errors) when binding failed on a plan that is not lenient; a lenient plan's
 * handler gets the errors itself (__db_binding_errors__), as at dispatch. */
static PyObject *binder_call(BinderObject *self, PyObject *args)
{
    PyObject *request, *body, *request_obj;
    if (!PyArg_ParseTuple(args, "OOO:call", &request, &body, &request_obj))
        return NULL;
    const route_plan_t *plan = self->plan;
    if (plan == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Binder.__init__ was not called");
        return NULL;
    }
    server_request_t *req;
    router_match_t m;
    if (!request_kept_match(request, &req, &m)) {
        PyErr_SetString(PyExc_RuntimeError,
                        "the route handler's request is no longer being served (or is not "
                        "the server's Request of a custom-handler route)");
        return NULL;
    }
    /* The binder reads the head from the request and the body from this copy. */
    server_request_t copy = *req;
    Py_buffer view = {0};
    if (body != Py_None) {
        if (PyObject_GetBuffer(body, &view, PyBUF_SIMPLE) < 0)
            return NULL;
        copy.body = view.buf;
        copy.body_len = (size_t)view.len;
        copy.streamed = 0;
    }
    m.data = (void *)plan;
    PyObject *stack[APP_MAX_ARGS + 2] = {NULL};
    PyObject **argv = stack + 1; /* room for PY_VECTORCALL_ARGUMENTS_OFFSET */
    PyObject *inject = Py_NewRef(request_obj), *errors = NULL, *result = NULL, *out = NULL;
    int b = bind_arguments(plan, &m, &copy, argv, &inject, &errors);
    if (b < 0)
        goto done;
    if (b > 0 && !plan->lenient) {
        out = Py_BuildValue("(OO)", Py_False, errors);
        goto done;
    }
    result = b > 0 ? app_call_lenient(plan, argv, errors)
                   : PyObject_Vectorcall(plan->handler, argv,
                                         (size_t)plan->npositional | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                         plan->kwnames);
    if (result != NULL)
        out = Py_BuildValue("(OO)", Py_True, result);
done:
    for (int i = 0; i < plan->nargs; i++)
        Py_XDECREF(argv[i]);
    Py_XDECREF(inject);
    Py_XDECREF(errors);
    Py_XDECREF(result);
    if (view.obj != NULL)
        PyBuffer_Release(&view);
    return out;
}

static PyObject *binder_needs_body(BinderObject *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(self->needs_body);
}

static void binder_dealloc(BinderObject *self)
{
    plan_free(self->plan);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef binder_methods[] = {
    {"call", (PyCFunction)binder_call, METH_VARARGS,
     "call(request, body, request_obj) -> (True, result) or (False, errors)"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef binder_getset[] = {
    {"needs_body", (getter)binder_needs_body, NULL,
     "A parameter is bound from the body: call() needs the body's bytes.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject Binder_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "data_bridge._core.Binder",
    .tp_basicsize = sizeof(BinderObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A route's parameters bound on demand: Binder(handler, path, params, *, "
              "strict_content_type=True, lenient=False, form_limits=(1000, 1000, 1048576)).",
    .tp_dealloc = (destructor)binder_dealloc,
    .tp_methods = binder_methods,
    .tp_getset = binder_getset,
    .tp_init = (initproc)binder_init,
    .tp_new = PyType_GenericNew,
};
