"""What the ControlNet pose folders contain: the file of each OpenVINO part, and the PyTorch source layout.

Written by `controlnet_export` and the stand-ins, read by the serving pipeline: one owner of the names.

The PyTorch source is one folder:

    text_encoder/ tokenizer/ unet/ vae/ scheduler/   <- stable-diffusion-v1-5/stable-diffusion-v1-5
    controlnet/                                      <- lllyasviel/sd-controlnet-openpose
    openpose/body_pose_model.pth                     <- lllyasviel/Annotators
"""

from __future__ import annotations

BODY_WEIGHTS = "body_pose_model.pth"
SD_PARTS = ("text_encoder", "tokenizer", "unet", "vae", "scheduler")

PART_FILES = {
    "text_encoder": "openvino_text_encoder_model.xml",
    "controlnet": "openvino_controlnet_model.xml",
    "unet": "openvino_unet_model.xml",
    "vae_decoder": "openvino_vae_decoder_model.xml",
    "openpose_body": "openvino_openpose_body_model.xml",
}
