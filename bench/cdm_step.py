"""Per-step cost of CDM against TALAS and against a naive per-step DTW: `python bench/cdm_step.py`.

The real-run setting (student all-MiniLM-L6-v2 cut to 2 layers, teacher all-mpnet-base-v2, the
bundled training texts, max_length 128, both dropout views of each text), one process, the same
batches, interleaved step by step so machine load hits all three alike:
- talas:  TALAS (InfoNCE + KD to the cached teacher vector; the cache is built beforehand);
- cdm:    CDM as trained: alignments from the collator's memo (computed once per text, here
          before the timed steps, as in any epoch after a text's first sight), teacher run online;
- naive:  CDM as the reference code does it: every step, entropy weights from the current models
          (teacher: its online last states times its embeddings; student: one extra no-grad pass)
          and the weighted DTW of every text of the batch in Python, then packing.
Each step = collate + teacher + forward/backward + AdamW; medians after warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import TRAIN_TEXTS, machine, minilm_path, mpnet_path  # noqa: E402


def main() -> None:
    from talas.align.groups import dtw_groups
    from talas.data.batch import Batch, to_device
    from talas.data.examples import load_from_config
    from talas.losses.tokens import cdm_entropy_weights
    from talas.methods.cdm import CdmConfig, CdmMethod, views
    from talas.methods.talas import TalasConfig, TalasMethod
    from talas.models.encoder import Encoder
    from talas.teacher.provision import TeacherNeeds, provide
    from talas.train.batching import PairCollator, epoch_batches, flatten_groups, pack_alignment
    from talas.train.setup import prepared

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=32)
    args = parser.parse_args()
    device = torch.device("cpu")
    torch.manual_seed(0)
    texts_used = (args.steps + args.warmup) * args.batch_size

    with tempfile.TemporaryDirectory() as tmp:
        common = dict(train_data_path=TRAIN_TEXTS, teacher_model_name=mpnet_path(), student_model_name=minilm_path(),
                      pooling_method="mean", student_pooling="mean", max_length=128, student_num_layers=2,
                      max_train_samples=texts_used, device="cpu")
        talas_cfg = TalasConfig(cache_path=os.path.join(tmp, "cache.safetensors"), **common)
        cdm_cfg = CdmConfig(**common)
        data = load_from_config(cdm_cfg)
        texts = data.unique_texts()
        cached = provide(talas_cfg, TeacherNeeds(vectors="cached"), texts, data.anchors, device)
        online = provide(cdm_cfg, CdmMethod.teacher_needs(cdm_cfg), texts, data.anchors, device)
        teacher = online.token_encoder

        def student():
            enc = Encoder.load(minilm_path(), "mean", 128, layers=2)
            enc.model.pooler.requires_grad_(False)
            return enc.train()

        methods = {"talas": TalasMethod(talas_cfg, student(), cached.dim), "cdm": CdmMethod(cdm_cfg, student(), online.dim),
                   "naive": CdmMethod(cdm_cfg, student(), online.dim)}
        optimizers = {k: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4) for k, m in methods.items()}
        aligners = CdmMethod.aligners(cdm_cfg, prepared(cdm_cfg, texts, methods["cdm"].student, online, device))
        collators = {"talas": PairCollator(data, methods["talas"].student, cached.cache, cached.rows),
                     "cdm": PairCollator(data, methods["cdm"].student, teacher=teacher, aligners=aligners),
                     "naive": PairCollator(data, methods["naive"].student, teacher=teacher)}
        began = time.perf_counter()
        collators["cdm"].text_tokens(list(range(len(texts))))  # the memo, as after a text's first sight
        memo_s = time.perf_counter() - began

        naive_student = methods["naive"].student
        s_table = naive_student.model.get_input_embeddings().weight
        t_table = teacher.model.get_input_embeddings().weight

        def naive_alignments(batch: Batch) -> None:
            """Weights from the current models and DTW for every text, all inside the step."""
            with torch.inference_mode():
                s_feats = batch.features
                s_hidden = naive_student.model(**s_feats).last_hidden_state
                s_w = cdm_entropy_weights(s_hidden @ s_table.T, s_feats["attention_mask"])
                t_w = cdm_entropy_weights(batch.teacher_hidden[0] @ t_table.T, batch.teacher_features["attention_mask"])
            s_encs = naive_student.token_encodings(batch.texts)
            t_encs = teacher.token_encodings(batch.texts)
            entries = []
            for row, (text, s_enc, t_enc) in enumerate(zip(batch.texts, s_encs, t_encs, strict=True)):
                pair = views(text, s_enc, t_enc, naive_student, teacher)
                ws = s_w[row][s_feats["attention_mask"][row].bool()].tolist()
                wt = t_w[row][batch.teacher_features["attention_mask"][row].bool()].tolist()
                entries.append(flatten_groups(dtw_groups(*pair, ws, wt)))
            width_s, width_t = s_feats["input_ids"].shape[1], batch.teacher_features["input_ids"].shape[1]
            batch.alignments = {"cdm": pack_alignment(
                entries, [len(e.ids) for e in s_encs], width_s, naive_student.tokenizer.padding_side == "left",
                [len(e.ids) for e in t_encs], width_t, teacher.tokenizer.padding_side == "left")}

        def step(name: str, indices) -> float:
            start = time.perf_counter()
            batch = to_device(collators[name](indices), device)
            if name != "talas":
                online.fill(batch)
            if name == "naive":
                naive_alignments(batch)
            loss, _ = methods[name](batch)
            loss.backward()
            optimizers[name].step()
            optimizers[name].zero_grad(set_to_none=True)
            return time.perf_counter() - start

        times: dict[str, list[float]] = {k: [] for k in methods}
        for i, indices in enumerate(epoch_batches(len(data), args.batch_size, 0, 0)[: args.steps + args.warmup]):
            for name in methods:
                elapsed = step(name, indices)
                if i >= args.warmup:
                    times[name].append(elapsed)

    med = {k: round(statistics.median(v), 3) for k, v in times.items()}
    print(json.dumps({
        "machine": machine(), "batch_size": args.batch_size, "steps": args.steps, "median_step_s": med,
        "cdm_over_talas": round(med["cdm"] / med["talas"], 2), "naive_over_cdm": round(med["naive"] / med["cdm"], 2),
        "cdm_memo_s_per_1000_texts": round(1000 * memo_s / len(texts), 2),
    }, indent=1))


if __name__ == "__main__":
    main()
