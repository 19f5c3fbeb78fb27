"""The inverted index: numba kernels (kernels.py), postings, deletions and filters
(inverted.py), and the model-aware catalogue (catalogue.py)."""
