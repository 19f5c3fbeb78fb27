"""EBRM (Cai et al., WWW 2023): entity tagger, query-entity cross-encoder, QE cache and soft
logic. Not built yet: see issue 5."""
