"""Command-line interface (``python -m mixedfx``)."""
