"""Building OpenVINO IR folders: stand-ins, the text export, SD conversion, the ControlNet export, the files
the torch-free process serves with. `python -m pipelines.build` is its command line."""
