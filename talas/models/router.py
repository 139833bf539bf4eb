"""`talas router`: one sentence-transformers model that encodes queries with the student, documents with the teacher.

    talas router --query_model checkpoints/talas/model --document_model <teacher> --output_dir asym_model

    from sentence_transformers import SentenceTransformer
    model = SentenceTransformer("asym_model")
    model.encode_query(["who wrote it?"])        # the student: fast, in the teacher's space
    model.encode_document(["A long passage."])   # the teacher: index the corpus once
    model.encode(["text"])                       # no task given: the document route (the teacher)

The folder holds a sentence-transformers ``Router`` (query route: the student's modules, document
route: the teacher's) followed by ``Normalize``, so both routes give unit vectors and a dot-product
index ranks as cosine does. Only a student whose vectors live in the teacher's space makes sense
here: a width mismatch is refused, as in ``talas eval --query_model/--corpus_model``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from talas.config import option
from talas.config.options import check_ranges
from talas.errors import ConfigError, ModelError
from talas.models.encoder import POOLING_METHODS
from talas.models.export import ST_POOLING, st_modules


@dataclass
class RouterConfig:
    """The options of `talas router`; the three paths are required."""

    query_model: str = option("", "The student folder (exported in the teacher's space).", group="models")
    document_model: str = option("", "The teacher folder.", group="models")
    output_dir: str = option("", "Where the router model is written.", group="models")
    query_pooling: str | None = option(None, "Pooling of a plain transformers --query_model.", POOLING_METHODS, group="models")
    document_pooling: str | None = option(None, "Pooling of a plain transformers --document_model.", POOLING_METHODS, group="models")

    def check(self) -> None:
        check_ranges(self)
        missing = [f"--{name}" for name in ("query_model", "document_model", "output_dir") if not getattr(self, name)]
        if missing:
            raise ConfigError(f"`talas router` needs {', '.join(missing)}: the student folder, the teacher folder and where to write the router.")


def router_class():
    try:  # sentence-transformers >= 6
        from sentence_transformers.base.modules import Router
    except ImportError:  # 5.x
        try:
            from sentence_transformers.models import Router
        except ImportError:
            raise ModelError("`talas router` needs sentence-transformers >= 5.0 (its Router module).") from None
    return Router


def load_st(path: str, pooling: str | None, flag: str):
    """A sentence-transformers model from a folder: its own modules, or Transformer + ``pooling`` for a plain one."""
    from sentence_transformers import SentenceTransformer

    folder = os.path.expanduser(path)
    if not os.path.isdir(folder):
        raise ModelError(f"{flag} {path!r} is not a folder. Pass a saved model folder (an exported student, a teacher).")
    if os.path.isfile(os.path.join(folder, "modules.json")):
        return SentenceTransformer(folder, device="cpu")
    if not pooling:
        raise ConfigError(f"{flag} {path} is not a sentence-transformers folder (no modules.json): pass its pooling "
                          f"({', '.join(POOLING_METHODS)}) with {flag.replace('model', 'pooling')}.")
    modules = st_modules()
    transformer = modules.Transformer(folder)
    pooling_module = modules.Pooling(width(transformer), pooling_mode=ST_POOLING[pooling])
    return SentenceTransformer(modules=[transformer, pooling_module], device="cpu")


def width(module) -> int:
    """Output width of a model or a Transformer module (sentence-transformers 6 renamed the 5.x getters)."""
    for name in ("get_embedding_dimension", "get_sentence_embedding_dimension", "get_word_embedding_dimension"):
        if hasattr(module, name):
            return getattr(module, name)()
    raise ModelError(f"Cannot tell the output width of {type(module).__name__}.")


def export_router(query_model: str, document_model: str, out_dir: str, query_pooling: str | None = None,
                  document_pooling: str | None = None) -> str:
    """Write the query/document router model to ``out_dir`` (replaced only once the new one is complete)."""
    from sentence_transformers import SentenceTransformer

    query = load_st(query_model, query_pooling, "--query_model")
    document = load_st(document_model, document_pooling, "--document_model")
    if width(query) != width(document):
        raise ConfigError(
            f"--query_model {query_model} embeds into {width(query)} dimensions and --document_model {document_model} into "
            f"{width(document)}: a router needs both in one space. Export the student with its projection into the "
            "teacher's width (TALAS does so by default: --export_projection true)."
        )
    router = router_class().for_query_document(query_modules=list(query), document_modules=list(document))
    model = SentenceTransformer(modules=[router, st_modules().Normalize()], device="cpu")
    tmp = out_dir.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    return out_dir
