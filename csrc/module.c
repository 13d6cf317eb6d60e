/*
 * data_bridge._core: the one extension module. Each component registers its types and
 * functions here through its <component>_module_init(); the order matters only in that
 * the app layer uses the loop and JSON types, so it comes last.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "app/app.h"
#include "asgi/asgi.h"
#include "json/json.h"
#include "loop/loop.h"

static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "data_bridge._core",
    .m_doc = "Native core of data-bridge: JSON codec, PyLoop event loop, HTTP server.",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__core(void)
{
    PyObject *m = PyModule_Create(&core_module);
    if (m == NULL)
        return NULL;
    if (json_module_init(m) < 0 || loop_module_init(m) < 0 || app_module_init(m) < 0 ||
        asgi_module_init(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
