"""The `deepbow` command: thin click commands over the Python API, one module per group.

    score.py       encode, explain, score, eval, train, calibrate, data
    index_cmds.py  index build|add|update|delete|compact|stats|verify, search
    scale_cmds.py  encode-catalogue, index export-milvus|load-milvus|sync-milvus; --ray and
                   --backend milvus for the others (the `scale` extra)
    ebrm_cmds.py   entities, ebrm train|calibrate|eval-tagger|cache
    weights.py     weights show|set|scale|ban|link|unlink|pin|rule|undo|log|export|import|diff
    studio.py      studio;  demo.py  demo;  common.py  what they share
"""

from __future__ import annotations

import click

from cli import demo, ebrm_cmds, index_cmds, scale_cmds, score, studio, weights


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="deepbow")
def main() -> None:
    """deepbow: interpretable lexical relevance for Chinese e-commerce search.

    DeepBoW turns a query and a product title into sparse bags of words (word → weight);
    relevance is the sum over matched words of query weight × title weight.
    """


for command in (score.encode, score.explain, score.score, score.eval_cmd, score.train,
                score.calibrate, score.data, index_cmds.index_group, index_cmds.search,
                scale_cmds.encode_catalogue,
                ebrm_cmds.entities, ebrm_cmds.ebrm, weights.weights, studio.studio, demo.demo):
    main.add_command(command)


if __name__ == "__main__":
    main()
