"""The Parquet vectors directory (index/vectors.py): round trip, checks. Needs pyarrow."""

import json

import numpy as np
import pytest

from index.catalogue import INDEX_BATCH, encode_items
from tests.conftest import ITEMS

pytest.importorskip("pyarrow")

import index.vectors as vectors  # noqa: E402  (after the skip: needs pyarrow)


def test_round_trip(tiny_model, tmp_path):
    codes = encode_items(tiny_model, ITEMS, INDEX_BATCH)
    out = tmp_path / "v.parquet"
    m = vectors.write_vectors(ITEMS, codes, out, tiny_model.model_id, tiny_model.scales["title"],
                              first_doc=5)
    assert m["rows"] == len(ITEMS) and m["n_terms"] == tiny_model.vocab.size
    manifest, table = vectors.read_vectors(out, verify=True)
    assert manifest == m
    assert table.column("doc").to_pylist() == list(range(5, 5 + len(ITEMS)))
    assert [json.loads(s) for s in table.column("item").to_pylist()] == ITEMS
    back = vectors.table_codes(table, tiny_model.vocab.size)
    assert (back != codes).nnz == 0 and back.dtype == np.uint8
    w = table.column("weights").combine_chunks().flatten().to_numpy()
    assert np.array_equal(w, (codes.data * tiny_model.scales["title"]).astype(np.float32))


def test_refusals(tiny_model, tmp_path):
    codes = encode_items(tiny_model, ITEMS, INDEX_BATCH)
    out = tmp_path / "v.parquet"
    vectors.write_vectors(ITEMS, codes, out, "m", 0.01)
    with pytest.raises(vectors.VectorsFileError, match="exists"):
        vectors.write_vectors(ITEMS, codes, out, "m", 0.01)
    part = next(out.glob("*.parquet"))
    part.write_bytes(part.read_bytes() + b"x")
    with pytest.raises(vectors.VectorsFileError, match="size"):
        vectors.open_vectors(out)
    (out / "manifest.json").write_text('{"format": "other"}')
    with pytest.raises(vectors.VectorsFileError, match="format"):
        vectors.open_vectors(out)
    with pytest.raises(vectors.VectorsFileError, match="no vectors directory"):
        vectors.open_vectors(tmp_path / "none")
