"""Encoding on Ray (index/ray_encode.py): the codes of the in-process path, bit for bit.

Needs the `scale` extra (ray[data], pyarrow); skipped without it. The Ray runs start one local
cluster of 2 CPUs with 2 actors × 0.5 CPU, as the issue asks, and take about a minute: `slow`.
"""

import numpy as np
import pytest

from deepbow.errors import InputError
from index.catalogue import INDEX_BATCH, encode_items
from tests.index.test_shards import catalogue, write_shards

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
ray = pytest.importorskip("ray")

import index.ray_encode as re_  # noqa: E402  (after the skips: needs the scale extra)

CHUNK = 64  # small chunks, so that 300 titles cross several chunk and shard boundaries


@pytest.fixture(scope="module")
def local_ray():
    cfg = re_.RayConfig(num_cpus=2, actors=2, cpus_per_actor=0.5, chunk=CHUNK)
    with re_.ray_session(cfg):
        yield cfg


@pytest.mark.slow
def test_ray_codes_are_bit_identical_to_the_in_process_path(local_ray, tiny_model,
                                                            tiny_model_dir, tmp_path):
    items = catalogue(300)
    write_shards(tmp_path / "jsonl", items)
    pq.write_table(pa.Table.from_pylist(items[:150]), tmp_path / "p-0.parquet")
    pq.write_table(pa.Table.from_pylist(items[150:]), tmp_path / "p-1.parquet")
    want = encode_items(tiny_model, items, CHUNK)

    got_items, codes = re_.encode_shards([tmp_path / "jsonl"], tiny_model, tiny_model_dir,
                                         local_ray)
    assert got_items == items
    assert codes.dtype == np.uint8 and codes.shape == want.shape
    assert (codes != want).nnz == 0 and np.array_equal(codes.indptr, want.indptr)

    pitems, pcodes = re_.encode_shards([tmp_path / "p-0.parquet", tmp_path / "p-1.parquet"],
                                       tiny_model, tiny_model_dir, local_ray)
    assert pitems == items and (pcodes != want).nnz == 0

    mem = re_.encode_items(items, tiny_model, tiny_model_dir, local_ray)
    assert (mem != want).nnz == 0


@pytest.mark.slow
def test_ray_vectors_parquet_and_default_chunks(local_ray, tiny_model, tiny_model_dir,
                                                tmp_path):
    from index.vectors import read_vectors, table_codes

    items = catalogue(300)
    write_shards(tmp_path / "jsonl", items)
    out = tmp_path / "vectors.parquet"
    manifest = re_.write_vectors([tmp_path / "jsonl"], tiny_model, tiny_model_dir, out,
                                 re_.RayConfig(chunk=INDEX_BATCH))
    assert manifest["rows"] == 300 and manifest["model_id"] == tiny_model.model_id
    _, table = read_vectors(out, verify=True)
    assert table.column("id").to_pylist() == [it["id"] for it in items]
    assert table.column("doc").to_pylist() == list(range(300))
    want = encode_items(tiny_model, items, INDEX_BATCH)
    assert (table_codes(table, tiny_model.vocab.size) != want).nnz == 0
    w = table.column("weights").combine_chunks().flatten().to_numpy()
    assert np.array_equal(w, (want.data * tiny_model.scales["title"]).astype(np.float32))


@pytest.mark.slow
def test_ray_bad_line_names_file_and_line(local_ray, tiny_model, tiny_model_dir, tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "a.jsonl").write_text('{"id": "a", "title": "华为手机"}\n\n{oops\n')
    with pytest.raises(InputError, match=r"a\.jsonl:3: not valid JSON"):
        re_.encode_shards([tmp_path / "s"], tiny_model, tiny_model_dir, local_ray)


def test_write_vectors_refuses_an_existing_out_before_ray(tiny_model, tmp_path):
    """An existing --out is refused as the in-process writer refuses it, before any Ray
    work (the shard path does not exist: reaching Ray would fail otherwise)."""
    from index.vectors import VectorsFileError

    out = tmp_path / "v.parquet"
    out.mkdir()
    with pytest.raises(VectorsFileError, match="exists: refusing to overwrite"):
        re_.write_vectors([tmp_path / "none.jsonl"], tiny_model, tmp_path, out)
