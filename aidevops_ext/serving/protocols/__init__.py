"""Wire protocols of the model server: MLflow's scoring protocol and the Open Inference Protocol v2."""
