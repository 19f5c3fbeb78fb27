"""EBRM (Cai et al., WWW 2023): entity tagger, query-entity cross-encoder, QE cache and soft
logic. Built so far: soft_logic.py (see issue 5 for the rest)."""
