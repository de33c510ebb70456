"""C front end: read and check sources, preprocess with the system compiler, parse with pycparser."""
