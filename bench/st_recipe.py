"""Sentence-transformers' own distillation recipe, as a baseline: `python bench/st_recipe.py [--learning_rate 2e-4]`

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python bench/st_recipe.py --learning_rate 2e-4
    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python bench/st_recipe.py --max_steps 30 --name smoke  # quick check
    # Like for like with TALAS's demo settings: frozen word embeddings, dropout off
    python bench/st_recipe.py --batch_size 8 --learning_rate 1e-3 --freeze_embeddings --dropout 0
    # Foreign teacher: all-mpnet-base-v2, labels read from the TALAS cache of the same texts and setting
    python bench/st_recipe.py --teacher mpnet --labels_from_cache bench/out/cache_mpnet.safetensors
    # ... at config/foreign_teacher.yaml's budget and student: two epochs, batch 32, blocks 0 and 5
    python bench/st_recipe.py --teacher mpnet --labels_from_cache bench/out/cache_mpnet.safetensors \
      --epochs 2 --batch_size 32 --student_layers 0,5 --freeze_embeddings --dropout 0 --learning_rate 1e-3

The "model distillation / MSE" recipe of the sentence-transformers docs: encode the training texts
once with the teacher (``teacher.encode``), store the vectors as the ``label`` column of a
``datasets.Dataset``, and train the student with ``losses.MSELoss`` through
``SentenceTransformerTrainer``. Same setting as our demo (bench/tune.py): teacher
all-MiniLM-L6-v2, student = its first 2 layers, max length 128, the bundled training texts, one
epoch, warmup 10% then the trainer's default linear decay, seed 42. With ``--teacher mpnet``
(all-mpnet-base-v2, 768-d) the student gets the recipe's Dense layer to the teacher's width after
its pooling (then Normalize, as both models end with one). ``--freeze_embeddings`` and
``--dropout`` give the recipe the same advantages the TALAS demo settings use.

cache_s times the teacher's encode only; train_s times building the trainer plus training (model
loading is in neither). Scores STS-B and SICK-R on validation (select on it) and test (report it),
prints one JSON line and appends it to bench/out/st_recipe.jsonl. One configuration per process,
so peak_rss_mb is that configuration's own.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import ROOT, TRAIN_TEXTS, Timer, minilm_path, mpnet_path, peak_rss_mb, sts_scores  # noqa: E402

MAX_LENGTH = 128
STUDENT_LAYERS = 2
SEED = 42


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learning_rate", type=float, default=2e-4, help="Peak learning rate (AdamW).")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=1, help="Passes over the training texts.")
    parser.add_argument("--max_steps", type=int, default=0, help="Stop after this many steps (0: --epochs full epochs).")
    parser.add_argument("--student_layers", default=None,
                        help="Blocks of all-MiniLM-L6-v2 the student keeps, e.g. 0,5 (default: the first 2), as talas's flag.")
    parser.add_argument("--name", default=None, help="Name of the JSON record (default: st_mse_lr{learning_rate}).")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (bf16 training on cuda, like talas's default).")
    parser.add_argument("--save_dir", default=None, help="Save the trained student here (default: save nothing).")
    parser.add_argument("--teacher", choices=("minilm", "mpnet"), default="minilm",
                        help="all-MiniLM-L6-v2 (the student's own full model) or all-mpnet-base-v2 (768-d: a Dense layer is added).")
    parser.add_argument("--freeze_embeddings", action="store_true", help="Keep the student's word embeddings fixed.")
    parser.add_argument("--dropout", type=float, default=-1.0, help="Student dropout while training (-1: the model's own 0.1).")
    parser.add_argument("--labels_from_cache", default=None,
                        help="Read the teacher vectors from a TALAS cache of the same teacher, texts, mean pooling, "
                             "length 128 and normalisation instead of encoding them (cache_s is then 0).")
    return parser.parse_args(argv)


def load_models(args: argparse.Namespace):
    """Teacher = the full model; student = all-MiniLM-L6-v2 cut to its first STUDENT_LAYERS layers."""
    from sentence_transformers import SentenceTransformer
    from torch import nn

    from talas.models.encoder import keep_layers, set_dropout
    from talas.models.export import st_modules

    teacher = SentenceTransformer(minilm_path() if args.teacher == "minilm" else mpnet_path(), device=args.device)
    student = SentenceTransformer(minilm_path(), device=args.device)
    # The folders say 256 / 384; the benchmarks train and score at 128 for both.
    teacher.max_seq_length = student.max_seq_length = MAX_LENGTH
    # student[0] is the Transformer module; auto_model is its Hugging Face model (ST 6.2: also `.model`).
    model = student[0].auto_model
    keep_layers(model, tuple(int(i) for i in args.student_layers.split(",")) if args.student_layers else STUDENT_LAYERS)
    if args.freeze_embeddings:
        model.get_input_embeddings().requires_grad_(False)
    if args.dropout != -1:
        set_dropout(model, args.dropout)
    width = teacher.get_embedding_dimension()
    if width != student.get_embedding_dimension():
        dense = st_modules().Dense(student.get_embedding_dimension(), width, activation_function=nn.Identity())
        student = SentenceTransformer(modules=[student[0], student[1], dense, st_modules().Normalize()], device=args.device)
    return teacher, student


def training_texts() -> list[str]:
    from talas.data.examples import load_training_data

    return load_training_data(TRAIN_TEXTS, text_column="text").anchors


def teacher_dataset(teacher, texts: list[str], cache_path: str | None = None):
    """The recipe's training set: each text with its teacher vector as ``label`` (float32, as encode returns)."""
    from datasets import Dataset

    if cache_path:
        from talas.cache.format import open_cache

        cache = open_cache(cache_path)
        labels = cache.gather(cache.rows_for(texts)).float().numpy()
    else:
        labels = teacher.encode(texts, batch_size=64, convert_to_numpy=True)
    return Dataset.from_dict({"text": texts, "label": labels})


def train_student(student, dataset, args: argparse.Namespace, output_dir: str) -> int:
    """Train with MSELoss through SentenceTransformerTrainer; returns the number of optimiser steps taken."""
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import MSELoss

    training_args = SentenceTransformerTrainingArguments(
        output_dir=output_dir,
        num_train_epochs=args.epochs,
        max_steps=args.max_steps if args.max_steps > 0 else -1,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        # transformers 5 takes the warmup ratio as a float warmup_steps (warmup_ratio is deprecated there).
        warmup_steps=0.1,
        lr_scheduler_type="linear",  # the trainer's default, stated so the comparison is explicit
        seed=SEED,
        logging_steps=50,
        save_strategy="no",
        report_to="none",
        use_cpu=args.device == "cpu",
        bf16=args.device.startswith("cuda"),
        disable_tqdm=True,  # logs as plain lines: this runs next to other jobs, often redirected to a file
    )
    # MSELoss is plain MSE between the student's output and the label. all-MiniLM-L6-v2 ends in a Normalize
    # module, so here both sides are unit vectors; that is the recipe as published, kept as is.
    trainer = SentenceTransformerTrainer(
        model=student, args=training_args, train_dataset=dataset, loss=MSELoss(student)
    )
    trainer.train()
    return trainer.state.global_step


def main(argv: list[str] | None = None) -> None:
    from sentence_transformers import SentenceTransformer

    args = parse_args(argv)
    name = args.name or f"st_mse_lr{args.learning_rate:g}"
    teacher, student = load_models(args)
    texts = training_texts()
    with Timer() as cache_timer:
        dataset = teacher_dataset(teacher, texts, args.labels_from_cache)
    del teacher  # not needed any more; training and scoring run on the student alone
    with tempfile.TemporaryDirectory() as output_dir, Timer() as train_timer:
        steps = train_student(student, dataset, args, output_dir)
    if args.save_dir:
        student.save(args.save_dir)

    def encode(batch: list[str]):
        return student.encode(batch, batch_size=64, convert_to_numpy=True)

    record = {
        "name": name,
        "teacher": args.teacher,
        "freeze_embeddings": args.freeze_embeddings,
        "dropout": args.dropout,
        "learning_rate": args.learning_rate,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "student_layers": args.student_layers or f"first {STUDENT_LAYERS}",
        "steps": steps,
        "cache_s": round(cache_timer.seconds, 1),
        "train_s": round(train_timer.seconds, 1),
        "total_s": round(cache_timer.seconds + train_timer.seconds, 1),
        "peak_rss_mb": round(peak_rss_mb()),
        "validation": sts_scores(encode, "validation"),
        "test": sts_scores(encode, "test"),
    }
    if any(type(module).__name__ == "Dense" for module in student):  # also score the bare student, as bench/tune.py does
        bare = SentenceTransformer(modules=[student[0], student[1]], device=args.device)

        def bare_encode(batch: list[str]):
            return bare.encode(batch, batch_size=64, convert_to_numpy=True)

        record["without_head"] = {"validation": sts_scores(bare_encode, "validation"), "test": sts_scores(bare_encode, "test")}
    print(json.dumps(record), flush=True)
    os.makedirs(os.path.join(ROOT, "bench", "out"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "out", "st_recipe.jsonl"), "a") as handle:
        handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
