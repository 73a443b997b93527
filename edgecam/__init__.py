"""edgecam: a real-time camera inference daemon for Raspberry Pi and Linux."""

__version__ = "0.1.0"
