"""Encoding on Ray (index/ray_encode.py): the codes of the in-process path, bit for bit.

Needs the `scale` extra (ray[data], pyarrow); skipped without it. The Ray runs start one local
cluster of 2 CPUs with 2 actors × 0.5 CPU, as the issue asks, and take about a minute: `slow`.
"""

import json
import random

import numpy as np
import pytest

from deepbow.catalogue import read_catalogue
from deepbow.errors import InputError
from index.catalogue import INDEX_BATCH, encode_items
from tests.conftest import BRANDS, FILLERS, PRODUCTS

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
ray = pytest.importorskip("ray")
re_ = pytest.importorskip("index.ray_encode")

CHUNK = 64  # small chunks, so that 300 titles cross several chunk and shard boundaries


def catalogue(n: int, seed: int = 3) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        b, p = rng.choice(BRANDS), rng.choice(PRODUCTS)
        words = [b, *rng.sample(FILLERS, rng.randint(0, 4)), p]
        rng.shuffle(words)
        out.append({"id": f"i{i}", "title": "".join(words), "brand": b, "product": p,
                    "tags": rng.sample(FILLERS, 2)})
    return out


def write_shards(folder, items, cuts=(0, 90, 91, 200)) -> None:
    """JSONL shards (one holds a TSV line, a blank line and CRLF) in name order."""
    folder.mkdir()
    bounds = [*cuts, len(items)]
    for s, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False)):
        with open(folder / f"part-{s}.jsonl", "w", encoding="utf-8", newline="") as fh:
            for it in items[a:b]:
                if it.get("tsv"):
                    fh.write(f"{it['id']}\t{it['title']}\r\n\n")
                else:
                    fh.write(json.dumps(it, ensure_ascii=False) + "\n")


def test_lines_and_parse_line_read_as_read_catalogue(tmp_path):
    items = catalogue(20)
    items[5] = {"id": "i5", "title": items[5]["title"], "tsv": True}
    write_shards(tmp_path / "s", items, cuts=(0,))
    path = tmp_path / "s" / "part-0.jsonl"
    with open(path, "rb") as fh:
        got = [re_.parse_line(raw, str(path), n) for raw, n in re_._lines(fh, str(path))]
    assert got == read_catalogue(path)


@pytest.mark.parametrize("line,msg", [(b"{not json\n", "not valid JSON"),
                                      (b"only-an-id\n", "expected JSON"),
                                      (b'{"id": 1}\n', "string \"title\""),
                                      (b"\xff\xfe\n", "not UTF-8")])
def test_parse_line_errors_name_file_and_line(line, msg):
    with pytest.raises(InputError, match=f"cat.jsonl:7: .*{msg}"):
        re_.parse_line(line, "cat.jsonl", 7)


def test_shard_files(tmp_path):
    (tmp_path / "b.jsonl").write_text("x\ty\n")
    (tmp_path / "a.jsonl").write_text("x\ty\n")
    files, kind = re_.shard_files([tmp_path])
    assert kind == "text" and [f.rsplit("/", 1)[1] for f in files] == ["a.jsonl", "b.jsonl"]
    (tmp_path / "c.parquet").write_bytes(b"")
    with pytest.raises(InputError, match="mix"):
        re_.shard_files([tmp_path])
    with pytest.raises(InputError, match="no such"):
        re_.shard_files([tmp_path / "nope"])


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
