"""data-bridge: a Python web API framework whose request path is native C."""

__version__ = "0.1.0"
