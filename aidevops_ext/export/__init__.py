"""Running the same pipelines on other engines: Argo Workflows export and the per-step container entry."""
