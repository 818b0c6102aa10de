"""One file per tab's task, each following `pipelines.core.protocol.Runner`."""
