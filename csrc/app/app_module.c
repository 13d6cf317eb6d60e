/* Temporary: replaced as the app layer lands. */
#include "app/app.h"

int app_module_init(PyObject *module)
{
    (void)module;
    return 0;
}
