"""The options every method shares (TrainConfig) and those of the methods that read the teacher cache (CacheConfig).

A method's own options live beside it, in ``talas/methods/<name>.py``, in a subclass of one of these.
"""

from __future__ import annotations

from dataclasses import dataclass

from talas.config.options import check_ranges, option
from talas.errors import ConfigError


@dataclass
class TrainConfig:
    """Options shared by every method: data, student, teacher, optimisation, checkpoints."""

    method: str = option("talas", "Distillation method (`talas train --method X --help` lists its options).", group="method")
    config: str = option("", "YAML or JSON file with option values (command-line flags override it).", bookkeeping=True, group="logging")
    train_data_path: str = option("data/train/distill_texts_clean.csv", "Training data: a .csv, .tsv, .jsonl, .json (array or lines), "
                                  ".parquet or .arrow file (text formats also .gz), a `datasets` save_to_disk folder, or a hub dataset id "
                                  "(org/name).", group="data")
    dataset_config: str = option("", "Configuration (subset) of a hub dataset, e.g. pair or triplet.", group="data")
    dataset_split: str = option("train", "Split of a hub dataset or of a save_to_disk folder holding several.", group="data")
    text_column: str = option("", "Column with single texts (overrides detection).", group="data")
    anchor_column: str = option("", "Column with anchors / premises / sentence1 (overrides detection).", group="data")
    positive_column: str = option("", "Column with positives / hypotheses / sentence2 (overrides detection).", group="data")
    negative_column: str = option("", "Column with hard negatives (overrides detection).", group="data")
    label_column: str = option("", "NLI label column (entailment pairs are positives, contradictions hard negatives).", group="data")
    skip_bad_rows: bool = option(False, "Skip empty or missing texts with a counted warning instead of failing.", group="data")
    max_train_samples: int = option(0, "Use only the first N training rows (0 = all).", at_least=0, group="data")
    student_model_name: str = option("bert-base-uncased", "Student model: local folder or hub id.", group="student")
    student_num_layers: int = option(0, "Keep only the student's first N transformer layers (0 = all).", at_least=0, group="student")
    student_layers: list[int] = option([], "Keep these transformer layers of the student instead (0-based, increasing, e.g. 0,3); "
                                       "overrides --student_num_layers.", group="student")
    freeze_embeddings: bool = option(False, "Keep the student's word embeddings fixed (fewer parameters to update).", group="student")
    student_dropout: float = option(-1.0, "Dropout probability in the student while training (-1 = the model's own; 0 = off).", group="student")
    student_pooling: str = option("auto", "Student pooling (auto: a sentence-transformers folder's own, else mean for "
                                  "encoders, last_token for decoders).", ("auto", "cls", "mean", "last_token"), group="student")
    teacher_model_name: str = option("Qwen/Qwen3-Embedding-0.6B", "Teacher model: local folder or hub id.", group="teacher")
    pooling_method: str = option("auto", "Teacher pooling (auto: a sentence-transformers folder's own modules, else mean for "
                                 "encoders, last_token for decoders).", ("auto", "cls", "mean", "last_token"), group="teacher")
    teacher_prompt: str = option("", "Instruction prefixed to every text the teacher embeds.", group="teacher")
    teacher_max_length: int = option(0, "Teacher max tokens (0 = same as --max_length).", at_least=2, zero=True, group="teacher")
    teacher_dtype: str = option("auto", "Teacher weights dtype (auto = bf16 on GPU, fp32 on CPU).", ("auto", "float32", "bfloat16", "float16"), group="teacher")
    save_dir: str = option("checkpoints/talas", "Output folder: checkpoints, logs, config and the exported student.", bookkeeping=True, group="logging", aliases=("output_dir",))
    batch_size: int = option(128, "Pairs per optimiser step and device (before accumulation).", at_least=1, group="training", aliases=("per_device_train_batch_size",))
    epochs: int = option(5, "Passes over the training data (0: as many as --max_steps needs).", at_least=0, group="training", aliases=("num_train_epochs",))
    max_steps: int = option(0, "Stop after this many optimiser steps (0 = run all epochs).", at_least=0, group="training")
    learning_rate: float = option(2e-5, "Peak learning rate of the student.", above=0, group="training")
    weight_decay: float = option(0.01, "AdamW weight decay (not applied to biases and norms).", at_least=0, group="training")
    lr_scheduler: str = option("cosine", "Learning-rate schedule after warm-up.", ("cosine", "linear", "constant"), group="training", aliases=("lr_scheduler_type",))
    warmup_ratio: float = option(0.1, "Fraction of optimiser steps spent warming up linearly.", at_least=0, below=1, group="training")
    max_grad_norm: float = option(1.0, "Gradient clipping norm (0 = off).", at_least=0, group="training")
    grad_accum_steps: int = option(1, "Micro-batches accumulated per optimiser step.", at_least=1, group="training", aliases=("gradient_accumulation_steps",))
    group_by_length: bool = option(True, "Batch texts of similar length together (less padding, faster steps).", group="training")
    max_length: int = option(256, "Student max tokens per text (at most the model's position limit).", at_least=2, group="student")
    temperature: float = option(0.05, "InfoNCE temperature.", above=0, group="training")
    seed: int = option(42, "Random seed (data order, dropout, initialisation).", group="training")
    mixed_precision: str = option("auto", "auto = bf16 autocast on CUDA, fp32 on CPU.", ("auto", "bf16", "no"), group="training", aliases=("bf16=bf16", "fp16=fp16"))
    gradient_checkpointing: bool = option(False, "Trade compute for memory in the student.", bookkeeping=True, group="device")
    num_workers: int = option(0, "DataLoader worker processes.", at_least=0, bookkeeping=True, group="device", aliases=("dataloader_num_workers",))
    log_steps: int = option(10, "Write a log line every N optimiser steps.", at_least=1, bookkeeping=True, group="logging", aliases=("logging_steps",))
    save_steps: int = option(0, "Save a resumable checkpoint every N optimiser steps (0 = at each epoch end).", at_least=0, bookkeeping=True, group="logging")
    save_total_limit: int = option(2, "Keep only the newest N checkpoints of this run (0 = keep all).", at_least=0, bookkeeping=True, group="logging")
    resume: str = option("", "Resume from a checkpoint folder, or 'latest' for the newest in save_dir (its options must match).", bookkeeping=True, group="logging", aliases=("resume_from_checkpoint",))
    overwrite: bool = option(False, "Start a fresh run in a save_dir that holds an earlier run: its outputs are moved to <save_dir>/replaced/<time>/ (never deleted).", bookkeeping=True, group="logging", aliases=("overwrite_output_dir",))
    eval_tasks: str = option("", "Comma-separated evaluation tasks run on validation splits after each epoch.", bookkeeping=True, group="logging")
    eval_task_file: str = option("", "Task declaration file (default: the bundled suite).", bookkeeping=True, group="logging")
    device: str = option("auto", "auto, cpu, cuda, cuda:1, ...", bookkeeping=True, group="device")

    def check(self) -> None:
        check_options(self)


def check_options(cfg: TrainConfig) -> None:
    """Every field in its range, and the combinations no single range expresses (ConfigError otherwise).

    The command line checks each value as it reads it; this covers configs built in code too.
    """
    check_ranges(cfg)
    if cfg.epochs == 0 and cfg.max_steps == 0:
        raise ConfigError("--epochs 0 with --max_steps 0: nothing to train. Pass --epochs N ≥ 1, or --max_steps N ≥ 1 (--epochs 0 then runs as many epochs as the steps need).")
    if cfg.resume and cfg.overwrite:
        raise ConfigError("--resume continues the run in --save_dir and --overwrite replaces it: pass one of them.")


@dataclass
class CacheConfig(TrainConfig):
    """Options of methods that read sentence vectors from the teacher cache (TALAS, Stella)."""

    cache_teacher: bool = option(True, "Cache teacher embeddings once (False: run the teacher online every step).", group="cache")
    cache_path: str = option("cache/teacher_train.safetensors", "Teacher cache file (a seed-format .pt path is read if it exists).", bookkeeping=True, group="cache")
    normalize_cache: bool = option(False, "L2-normalise teacher vectors before caching.", group="cache")
    cache_dtype: str = option("float32", "Storage dtype of the cache.", ("float32", "float16", "bfloat16"), group="cache")
    strict_cache: bool = option(False, "Fail instead of rebuilding when the cache does not match the run.", bookkeeping=True, group="cache")
    cache_batch_size: int = option(64, "Texts per teacher forward pass while caching.", at_least=1, bookkeeping=True, group="cache")
    cache_chunk_size: int = option(4096, "Texts per resumable chunk of the cache build.", at_least=1, bookkeeping=True, group="cache")
