"""Serving a model: the OpenVINO runtime and its compile cache, the backend pairs, the memory budget, the
PyTorch worker process, the model-server client."""
