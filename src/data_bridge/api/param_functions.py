"""FastAPI's ``param_functions`` module: the parameter markers under their call names.

The markers are classes here (params.py, depends.py), so the functions are those classes;
this module exists so that ``from fastapi.param_functions import Query`` keeps working.
"""

from __future__ import annotations

from data_bridge.api.depends import Depends, Security
from data_bridge.api.params import Body, Cookie, File, Form, Header, Path, Query

__all__ = ["Body", "Cookie", "Depends", "File", "Form", "Header", "Path", "Query", "Security"]
