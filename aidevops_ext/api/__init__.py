"""What the Deploy panel's REST API answers, shaped from the core (no Jupyter, no tornado here).

- `inputs`: request bodies and query values checked and turned into core arguments (ConfigError otherwise);
- `views`: JSON-able views of models (with lineage), deployments (with health), runs and their notebooks.

The CLI or another face can reuse both; `aidevops_ext.routes` only parses HTTP and calls these.
"""
