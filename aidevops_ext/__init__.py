"""aidevops: notebooks as the delivery pipeline for ML models.

This module stays cheap to import: version and Jupyter entry points only.
MLflow, papermill and CuPy are imported lazily where they are used.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
