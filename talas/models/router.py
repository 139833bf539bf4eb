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

import argparse
import os
import shutil
import sys

from talas.models.encoder import POOLING_METHODS
from talas.errors import ConfigError, ModelError, TalasError
from talas.models.export import ST_POOLING, st_modules


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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="talas router", description="Save one model that encodes queries with the student "
                                "and documents with the teacher (sentence-transformers Router).")
    p.add_argument("--query_model", required=True, help="the student folder (exported in the teacher's space)")
    p.add_argument("--document_model", required=True, help="the teacher folder")
    p.add_argument("--output_dir", required=True, help="where the router model is written")
    p.add_argument("--query_pooling", choices=POOLING_METHODS, help="pooling of a plain transformers --query_model")
    p.add_argument("--document_pooling", choices=POOLING_METHODS, help="pooling of a plain transformers --document_model")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        out = export_router(args.query_model, args.document_model, args.output_dir, args.query_pooling, args.document_pooling)
    except TalasError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"Saved the query/document router to {out}: SentenceTransformer({out!r}).encode_query / .encode_document")
    return 0
