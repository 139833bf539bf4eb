"""The teacher cache: every unique training text embedded once by the teacher, stored in one memory-mapped file.

    from talas.cache import ensure_cache
    cache, rows = ensure_cache(cfg, texts, anchors)   # found, repaired or built; cache.gather(rows) -> teacher vectors

Modules, bottom up: ``format`` (key, header, reading, checksums), ``planner`` (manifest, partial
file, progress records, the chunks left), ``build`` (embedding them, finalising, writing),
``store`` (several caches in one folder: naming, --list, --prune, --verify), ``legacy`` (the
seed's .pt caches) and ``ensure`` (the one entry point above).
"""

from talas.cache.ensure import cache_file, ensure_cache
from talas.cache.format import TeacherCache, open_cache

__all__ = ["TeacherCache", "cache_file", "ensure_cache", "open_cache"]
