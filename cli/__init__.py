"""The deepbow command line (main.py): thin click commands over the Python API."""
