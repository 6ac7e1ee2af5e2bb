"""Pretrained encoders for U-Nets, as segmentation_models_pytorch's ``encoders`` package: one file per encoder,
each saying where its weights come from. The weights ship in ``weights/encoders/`` (fp16 safetensors + a card
with source and licence); nothing is downloaded at run time."""
