"""EBRM (Cai et al., WWW 2023): judge a product title entity by entity.

lexicon.py (gazetteer longest match), charvocab.py (character ids), tagger.py (BiLSTM entity
tagger and product/brand candidates), qe.py (query–entity cross-encoder), cache.py (the QE cache
in SQLite), soft_logic.py (t-norms), model.py (EBRM: entities, cached judgements and soft logic
into one score, explain), hybrid.py (EBRM with DeepBoW), qedata.py and train.py (training and
calibration). Load the shipped model with deepbow.load_ebrm().
"""
