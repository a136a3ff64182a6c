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
    """Add /aidevops/api/ to a running Jupyter server, and run the workspace's schedules while it runs.

    The scheduler thread is off with `AIDEVOPS_SCHEDULER=0` or `c.Aidevops.scheduler = False`
    (aidevops_ext/schedules/background.py); it starts once per workspace however often the extension loads.
    """
    from .routes import setup_route_handlers
    from .schedules import background

    setup_route_handlers(server_app.web_app, server_app.root_dir)
    server_app.log.info("aidevops: Deploy panel API registered under /aidevops/api/")
    config = server_app.config["Aidevops"] if "Aidevops" in server_app.config else {}
    if background.wanted(config.get("scheduler", True)) and background.start(server_app.root_dir, server_app.log.info):
        server_app.log.info("aidevops: scheduler running (AIDEVOPS_SCHEDULER=0 turns it off)")
