"""The model parts that run on either backend: tokenizer and encoder, T5, OpenPose, the ControlNet pipeline."""
