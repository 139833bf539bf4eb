"""Seed-compatible entry point: `python main.py --method talas --train_data_path ... [flags]`.

Equivalent to `talas train ...`; see `python main.py --help` for every flag and its default.
"""

import sys

from talas.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
