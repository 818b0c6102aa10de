"""The ground floor: settings, the model registry, the runner protocol, input checks, memory and CPU facts,
image and Stable Diffusion facts, the on-disk formats, and what resolving a model gives. Imports nothing above it."""
