"""For .ci/run: Python as if the `scale` extra were not installed (ray, pymilvus, milvus_lite
and pyarrow cannot be imported), so that the base install's behaviour is checked in the same
environment: the scale tests skip cleanly and the commands say which extra to install."""

import sys
from importlib.abc import MetaPathFinder

BLOCKED = ("ray", "pymilvus", "milvus_lite", "pyarrow")


class Block(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, Block())
