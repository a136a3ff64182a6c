"""What the panels' REST API takes and answers, apart from HTTP (no Jupyter, no tornado here).

- `models`: pydantic models of every request body, query and answer; a refused request is one ConfigError sentence;
- `openapi`: the OpenAPI file generated from those models (`python -m aidevops_ext.api.openapi`);
- `views`: JSON-able views of models (with lineage), deployments (with health), runs and their notebooks.

The CLI or another face can reuse them; `aidevops_ext.routes` only parses HTTP and calls these.
"""
