/*
 * The application layer: route plans compiled at startup, argument binding, handler
 * invocation and coroutine driving, response conversion. Registers the native Server
 * and route-table types on the extension module.
 */
#ifndef DB_APP_APP_H
#define DB_APP_APP_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

int app_module_init(PyObject *module);

#endif
