"""Child process of the store's crash tests: enrolls or rotates until it is killed (SIGKILL).

    python store_crash_child.py enroll|rotate DB KEY_FILE FIRST_INDEX
"""

from __future__ import annotations

import random
import sys

from cryptoface.system.keys import FileKeyProvider
from cryptoface.system.store import TemplateStore

TEMPLATE_BYTES = 32 << 10
MODEL, PARAMS, ACTOR = "model-a", "params-1", "crash-test"


def identity(index: int) -> str:
    return f"id-{index:05d}"


def template_for(name: str) -> bytes:
    """The deterministic template of `name`, so the parent can check what it reads back."""
    return random.Random(name).randbytes(TEMPLATE_BYTES)


def main(mode: str, db: str, key_file: str, first: int) -> None:
    store = TemplateStore(db, FileKeyProvider(key_file))
    print("ready", flush=True)
    index = first
    while True:
        if mode == "enroll":
            store.enroll(identity(index), template_for(identity(index)), model_id=MODEL,
                         param_id=PARAMS, actor=ACTOR)
            index += 1
        else:
            store.rotate_key(actor=ACTOR)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
