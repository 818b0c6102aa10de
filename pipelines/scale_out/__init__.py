"""The same IR on OpenVINO Model Server: the repository writer (`python -m pipelines.scale_out`), and a KServe
server that serves it for tests and benchmarks."""
