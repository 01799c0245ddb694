"""smsgw: an SMPP 3.4 SMS gateway delivering through GSM modems, on Trio."""

__version__ = "0.1.0"
