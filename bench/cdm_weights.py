"""Which entropy weights help CDM's DTW: `python bench/cdm_weights.py --texts 1000`.

1. The real-run pair, all-MiniLM-L6-v2 (WordPiece) ↔ all-mpnet-base-v2: on how many training texts
   do the two piece sequences differ (only there can weights change a path)?
2. A pair where they differ, WordPiece (all-MiniLM-L6-v2) ↔ byte-level BPE (Qwen2.5's tokenizer;
   no Qwen model is available here, so the BPE side is unweighted): DTW groups with the WordPiece
   side weighted by (a) nothing, (b) the initial 2-layer student's pseudo-logits (hidden states
   times its input embeddings: what ``--token_weights both`` gives the student side), (c) the full
   6-layer model's pseudo-logits (a trained model's distribution, as a teacher's would be).
   Reference: the exact character-span alignment (talas.align.groups.span_groups, fast tokenizers'
   offsets). Scores: precision / recall / F1 of the (student token, teacher token) links that the
   groups imply, and the share of texts whose groups the weights change.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import TRAIN_TEXTS, minilm_path, mpnet_path, qwen25_tokenizer_path  # noqa: E402


def links(groups) -> set[tuple[int, int]]:
    return {(s, t) for ss, ts in groups for s in ss for t in ts}


def main() -> None:
    from transformers import AutoModel, AutoTokenizer

    from talas.align.groups import dtw_groups, span_groups
    from talas.align.views import view_of
    from talas.data.examples import load_training_data
    from talas.losses.tokens import cdm_entropy_weights
    from talas.methods.cdm import pieces_match
    from talas.models.encoder import keep_layers

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=1000)
    args = parser.parse_args()
    texts = load_training_data(TRAIN_TEXTS).unique_texts()

    wordpiece = AutoTokenizer.from_pretrained(minilm_path())
    mpnet = AutoTokenizer.from_pretrained(mpnet_path())
    differ = sum(not pieces_match(view_of(wordpiece, t, lowercase=True, max_length=128),
                                  view_of(mpnet, t, lowercase=True, max_length=128)) for t in texts)

    bpe = AutoTokenizer.from_pretrained(qwen25_tokenizer_path())
    models = {}
    for name, layers in (("initial_student_2_layers", 2), ("full_model_6_layers", 6)):
        model = AutoModel.from_pretrained(minilm_path()).eval()
        keep_layers(model, layers)
        models[name] = model
    sample = texts[: args.texts]
    totals = {k: {"tp": 0, "pred": 0, "ref": 0, "changed": 0} for k in ("none", *models)}
    bpe_differ = 0
    for text in sample:
        s_view = view_of(wordpiece, text, lowercase=True, max_length=128)
        t_view = view_of(bpe, text, lowercase=True, max_length=128)
        bpe_differ += not pieces_match(s_view, t_view)
        reference = links(span_groups(s_view, t_view))
        ids = torch.tensor([wordpiece(text, truncation=True, max_length=128)["input_ids"]])
        plain = dtw_groups(s_view, t_view)
        for name in totals:
            if name == "none":
                groups = plain
            else:
                model = models[name]
                with torch.inference_mode():
                    hidden = model(input_ids=ids).last_hidden_state
                    weights = cdm_entropy_weights(hidden @ model.get_input_embeddings().weight.T, torch.ones_like(ids))[0]
                groups = dtw_groups(s_view, t_view, weights.tolist(), None)
            got = links(groups)
            row = totals[name]
            row["tp"] += len(got & reference)
            row["pred"] += len(got)
            row["ref"] += len(reference)
            row["changed"] += groups != plain
    scores = {}
    for name, row in totals.items():
        p, r = row["tp"] / row["pred"], row["tp"] / row["ref"]
        scores[name] = {"precision": round(100 * p, 2), "recall": round(100 * r, 2), "f1": round(200 * p * r / (p + r), 2),
                        "texts_changed_pct": round(100 * row["changed"] / len(sample), 1)}
    print(json.dumps({"minilm_vs_mpnet_texts_with_different_pieces": f"{differ} of {len(texts)}",
                      "wordpiece_vs_qwen25_bpe_texts_with_different_pieces": f"{bpe_differ} of {len(sample)}",
                      "wordpiece_vs_qwen25_bpe_links_vs_span_reference": scores}, indent=1))


if __name__ == "__main__":
    main()
