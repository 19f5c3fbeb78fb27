"""The inverted index: numba kernels (kernels.py), postings, deletions and filters
(inverted.py), the model-aware catalogue (catalogue.py), and weight editing: the edit journal
and its replay (edits.py) and the Editor that applies it to search and explain (editor.py)."""
