"""`talas router`: save one model that encodes queries with the student and documents with the teacher."""

from __future__ import annotations

from talas.cli.options import build_parser, parse
from talas.models.router import RouterConfig, export_router


def main(argv: list[str]) -> int:
    parser = build_parser(RouterConfig, "talas router", "Save one model that encodes queries with the student and documents "
                          "with the teacher (sentence-transformers Router).", config=False)
    cfg, _ = parse(parser, RouterConfig, argv, "talas router")
    out = export_router(cfg.query_model, cfg.document_model, cfg.output_dir, cfg.query_pooling, cfg.document_pooling)
    print(f"Saved the query/document router to {out}: SentenceTransformer({out!r}).encode_query / .encode_document")
    return 0
