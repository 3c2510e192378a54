"""Feature Map Explorer: see what convolutional networks do."""

__version__ = "0.1.0"
