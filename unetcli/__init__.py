"""unetcli: train and run the seed U-Net image models (colorize, decolorize, segment) on folders of photos."""

__version__ = "0.1.0"
