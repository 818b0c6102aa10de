"""Benchmark: the app's requests on each backend, each configuration in its own process.

    python -m bench                  # every workload, every configuration (long)
    python -m bench --quick          # the same, fewer repetitions
    python -m bench --workloads classification translation --configs pytorch-fp32 openvino-int8-weights

Workloads: classification (sentiment of a typical sentence at its own length and at 128 tokens,
zero-shot over 4 labels asked again; batch 1), translation (t5-small, 20 new tokens, greedy), sd
(one UNet step and one whole image at 512x512 with guidance), controlnet (one ControlNet + UNet step
at 512x512 with guidance, and OpenPose detection), startup (process start to ready and to the
first answer, with an empty and a warm model cache), visit (every tab and backend within a memory
budget).

Configurations: PyTorch fp32 eager (the app's baseline), PyTorch bf16 autocast, OpenVINO FP32
IR with an f32 precision hint, the same IR with the plugin's default precision, OpenVINO INT8
weights (float activations), OpenVINO INT8 weights and activations (calibrated; for ControlNet
with Token Merging), and Token Merging + INT8 for Stable Diffusion. The report names the CPU and
its features and marks the build the app serves on it (`pipelines.core.cpu`); every missing model is
built before anything is timed.

Every configuration runs in a fresh process with the same thread count (OMP_NUM_THREADS,
torch.set_num_threads, OpenVINO INFERENCE_NUM_THREADS) and the same inputs and seeds;
warm-up calls are discarded, then median and p90 are reported with peak resident memory
(and anonymous vs file-backed memory: OpenVINO maps its weights), weights on disk, and how
each output differs from PyTorch fp32's. Models resolve as in the app; offline they are
stand-ins (real architectures, seeded random weights, the real all-MiniLM-L6-v2 where
packaged), built and converted once. Writes OUT/bench.json, OUT/bench.md and OUT/chart.png.
"""
