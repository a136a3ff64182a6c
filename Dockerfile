# One image for both faces of the project on other engines:
#   serve a registered model:  docker run -p 8080:8080 -e MLFLOW_TRACKING_URI=http://mlflow:5000 IMAGE \
#                                  serve models:/NAME@champion --host 0.0.0.0
#   run one pipeline step:     docker run -e MLFLOW_TRACKING_URI=... IMAGE step notebooks/02_train.ipynb \
#                                  --name train --run-dir /work/run --needs prepare -p epochs=30
# (`aidevops export argo` writes the step commands; `aidevops deploy --target kubernetes` the serving ones.)
# tests/beyond/test_image.py lints this file with hadolint and runs these RUN and entry commands in a
# fresh virtualenv (no container engine runs on the CI machines): keep the two in step.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: the wheel, then a virtualenv holding it and its dependencies -------------------------
# SKIP_JUPYTER_BUILDER: the image serves models and runs steps; the JupyterLab Deploy panel's frontend
# build (Node >= 20.19 and the npm registry) is left out of it. The server extension stays importable.
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY aidevops_ext/ aidevops_ext/
COPY kernels/ kernels/
# The wheel carries the notebooks and pipelines as the `digits` template of `aidevops new` (pyproject's force-include).
COPY notebooks/ notebooks/
COPY pipelines/ pipelines/
RUN python -m venv /opt/aidevops \
 && /opt/aidevops/bin/pip install --no-cache-dir --disable-pip-version-check "pip>=24" \
 && SKIP_JUPYTER_BUILDER=1 /opt/aidevops/bin/pip wheel --no-cache-dir --disable-pip-version-check --no-deps --wheel-dir /dist . \
 && /opt/aidevops/bin/pip install --no-cache-dir --disable-pip-version-check /dist/*.whl \
 && /opt/aidevops/bin/aidevops init --no-git

# --- runtime: the virtualenv, the pipeline notebooks and specs, a non-root user -----------------
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/aidevops/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MPLBACKEND=Agg \
    MPLCONFIGDIR=/tmp/matplotlib \
    JUPYTER_RUNTIME_DIR=/tmp/jupyter-runtime \
    AIDEVOPS_HOME=/var/lib/aidevops \
    MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false \
    AIDEVOPS_PORT=8080
RUN groupadd --gid 10001 aidevops \
 && useradd --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin aidevops \
 && mkdir -p /var/lib/aidevops /work \
 && chown aidevops:aidevops /var/lib/aidevops /work
COPY --from=build /opt/aidevops /opt/aidevops
WORKDIR /app
COPY notebooks/ notebooks/
COPY pipelines/ pipelines/
USER 10001:10001
EXPOSE 8080
# Serving containers answer /health on AIDEVOPS_PORT; Kubernetes uses the manifests' own probes instead.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "aidevops_ext.export.healthcheck"]
ENTRYPOINT ["aidevops"]
CMD ["--help"]
