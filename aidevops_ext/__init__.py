"""aidevops: notebooks as the delivery pipeline for ML models.

This module stays cheap to import: version and Jupyter entry points only.
MLflow, papermill, CuPy, tornado and jupyter_server are imported lazily where they are used.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where JupyterLab finds the built Deploy panel (installed under share/jupyter/labextensions)."""
    return [{"src": "labextension", "dest": "aidevops-ext"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The Jupyter server extension: the Deploy panel's REST API (aidevops_ext.routes)."""
    return [{"module": "aidevops_ext"}]


def _load_jupyter_server_extension(server_app) -> None:
    """Add /aidevops/api/ to a running Jupyter server."""
    from .routes import setup_route_handlers

    setup_route_handlers(server_app.web_app, server_app.root_dir)
    server_app.log.info("aidevops: Deploy panel API registered under /aidevops/api/")
