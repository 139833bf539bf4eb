"""Per-step cost of the online token-level path vs TALAS's cached path: `python bench/token_step.py`.

Student all-MiniLM-L6-v2 cut to 2 layers, teacher all-mpnet-base-v2, the bundled training texts,
one process, the same batches. Interleaved step by step (so machine load hits both alike):
- cached:  TALAS (InfoNCE + KD) on teacher vectors read from the cache (built beforehand);
- token:   a token-level loss of the kind DSKD/CDM/EMO use (MSE of projected span-group-averaged
           student states to the teacher's last-layer states), the teacher run on every batch.
Each step = collate + teacher (token path) + forward/backward + AdamW; medians over steps after
warm-up. The collator's one-off cost per unique text (both tokenizations + span, dtw and mined
alignments) is timed cold on --align_texts texts; a step's collation after that is only padding
and packing. Also timed: the teacher fill under inference_mode + copy vs no_grad.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import TRAIN_TEXTS, machine, minilm_path, mpnet_path  # noqa: E402


class SpanMSE(nn.Module):
    """The token-level stand-in: one student pass, groups averaged by two batched matmuls."""

    def __init__(self, student, teacher_dim):
        super().__init__()
        self.student = student
        self.projection = nn.Linear(student.dim, teacher_dim)

    def forward(self, batch):
        out = self.student.forward_tokens(batch.features)
        groups = batch.alignments["span"]
        sg, tg = groups.student_groups, groups.teacher_groups
        s_count, t_count = sg.sum(-1, keepdim=True), tg.sum(-1, keepdim=True)
        keep = groups.group_mask & (s_count[..., 0] > 0) & (t_count[..., 0] > 0)
        s_mean = (sg @ out.tokens) / s_count.clamp(min=1)
        t_mean = (tg @ batch.teacher_hidden[0]) / t_count.clamp(min=1)
        loss = (self.projection(s_mean[keep]) - t_mean[keep]).pow(2).sum(-1).mean()
        return loss, {"loss": loss.detach()}


def timed(fn, *args):
    start = time.perf_counter()
    value = fn(*args)
    return value, time.perf_counter() - start


def main() -> None:
    from talas.data.batch import to_device
    from talas.data.examples import load_from_config
    from talas.methods.talas import TalasConfig, TalasMethod
    from talas.models.encoder import Encoder
    from talas.models.teacher import pick_device
    from talas.teacher.provision import OnlineTeacher, TeacherNeeds, builtin_aligners, provide
    from talas.train.batching import PairCollator, epoch_batches

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=2000, help="training texts used (the cache covers these)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--max_length", type=int, default=128)
    parser.add_argument("--align_texts", type=int, default=1000)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = pick_device(args.device)
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory() as tmp:
        cfg = TalasConfig(train_data_path=TRAIN_TEXTS, teacher_model_name=mpnet_path(), student_model_name=minilm_path(),
                          pooling_method="mean", student_pooling="mean", max_length=args.max_length, w_task=0.0,
                          max_train_samples=args.texts, cache_path=os.path.join(tmp, "cache.safetensors"),
                          device=str(device), student_dropout=0.0)
        data = load_from_config(cfg)
        texts = data.unique_texts()
        cached, build_s = timed(lambda: provide(cfg, TeacherNeeds(vectors="cached"), texts, data.anchors, device))
        token_needs = TeacherNeeds(vectors="none", layers=(-1,), alignments=("span",))
        online = provide(cfg, token_needs, texts, data.anchors, device)

        def student():
            enc = Encoder.load(cfg.student_model_name, "mean", cfg.max_length, layers=2)
            enc.model.pooler.requires_grad_(False)
            return enc.to(device).train()

        talas = TalasMethod(cfg, student(), cached.dim).to(device)
        token = SpanMSE(student(), online.dim).to(device)
        collate_cached = PairCollator(data, talas.student, cached.cache, cached.rows, single_view=True)
        collate_token = PairCollator(data, token.student, single_view=True, teacher=online.token_encoder,
                                     aligners=builtin_aligners(("span",)))

        # One-off cost per unique text: both tokenizations and all three alignments, cold memo.
        sample = list(range(min(args.align_texts, len(texts))))
        three = PairCollator(data, token.student, single_view=True, teacher=online.token_encoder,
                             aligners=builtin_aligners(("span", "dtw", "mined")))
        span_only = PairCollator(data, token.student, single_view=True, teacher=online.token_encoder,
                                 aligners=builtin_aligners(("span",)))
        tokens_only = PairCollator(data, token.student, single_view=True, teacher=online.token_encoder)
        one_off = {name: len(sample) / timed(c.text_tokens, sample)[1]
                   for name, c in (("tokenize_only", tokens_only), ("span", span_only), ("span_dtw_mined", three))}

        batches = epoch_batches(len(data), args.batch_size, 0, 0)[: args.steps + args.warmup]
        optimizers = {name: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4)
                      for name, m in (("cached", talas), ("token", token))}
        times: dict[str, list[float]] = {"cached": [], "token": [], "token_collate_cold": [], "token_collate_warm": [],
                                         "cached_collate": [], "teacher_fill": []}

        def step(name, method, collate, fill, indices):
            began = time.perf_counter()
            batch = to_device(collate(indices), device)
            if fill is not None:
                fill(batch)
            loss, _ = method(batch)
            loss.backward()
            optimizers[name].step()
            optimizers[name].zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize()
            return time.perf_counter() - began

        for i, indices in enumerate(batches):
            cold = timed(collate_token, indices)[1]  # first sight of these texts: tokenize + align
            warm = timed(collate_token, indices)[1]
            plain = timed(collate_cached, indices)[1]
            fill = timed(online.fill, to_device(collate_token(indices), device))[1]
            t_cached = step("cached", talas, collate_cached, None, indices)
            t_token = step("token", token, collate_token, online.fill, indices)
            if i >= args.warmup:
                for key, value in (("cached", t_cached), ("token", t_token), ("token_collate_cold", cold),
                                   ("token_collate_warm", warm), ("cached_collate", plain), ("teacher_fill", fill)):
                    times[key].append(value)

        # inference_mode + float32 copy (what OnlineTeacher does) vs no_grad without a copy.
        batch = to_device(collate_token(batches[0]), device)
        teacher = online.token_encoder
        variants = {"inference_mode_copy": lambda: OnlineTeacher(teacher, token_needs).fill(replace(batch)),
                    "no_grad": lambda: torch.no_grad()(teacher.forward_tokens)(batch.teacher_features, (-1,))}
        fills = {k: [] for k in variants}
        for _ in range(max(5, args.steps // 2)):
            for key, fn in variants.items():
                fills[key].append(timed(fn)[1])

    med = {k: round(statistics.median(v), 4) for k, v in times.items()}
    print(json.dumps({
        "machine": machine(), "device": str(device), "batch_size": args.batch_size, "steps": args.steps,
        "max_length": args.max_length, "cache_build_s": round(build_s, 1), "median_s": med,
        "token_over_cached": round(med["token"] / med["cached"], 2),
        "collate_texts_per_s_cold": {k: round(v) for k, v in one_off.items()},
        "teacher_fill_median_s": {k: round(statistics.median(v), 4) for k, v in fills.items()},
    }, indent=1))


if __name__ == "__main__":
    main()
