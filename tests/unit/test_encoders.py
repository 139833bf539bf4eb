"""The end token a last-token teacher pools, for the tokenizer layouts of real decoders (saved and loaded by path).

- Qwen3-Embedding: the tokenizer appends <|endoftext|> (its pad token), while its eos_token is <|im_end|>;
- Qwen2.5 (Instruct, as bench/decoder_real.py runs it): nothing appended, eos_token <|im_end|>;
- Llama / Gemma: a BOS prepended, nothing appended.
"""

from __future__ import annotations

import pytest
import torch
from tiny_models import CORPUS  # noqa: E402  (tests/ is on sys.path: conftest.py)

from talas.models.encoder import Encoder, load_tokenizer, tokenizer_appends_eos

SPECIALS = ["<|endoftext|>", "<|im_end|>", "<|bos|>"]


def save_bpe(path, template: str | None, eos: str, pad: str):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIALS,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    if template:
        tok.post_processor = processors.TemplateProcessing(single=template, special_tokens=[(s, tok.token_to_id(s)) for s in SPECIALS])
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=eos, pad_token=pad).save_pretrained(path)
    return load_tokenizer(str(path))


def end_ids(tokenizer, text: str = "the cat sits on the mat") -> list[int]:
    return Encoder(torch.nn.Identity(), tokenizer, "last_token", 16).token_ids([text])[0]


def test_qwen3_embedding_layout_keeps_the_tokenizers_own_end_token(tmp_path):
    tok = save_bpe(tmp_path, "$A <|endoftext|>", eos="<|im_end|>", pad="<|endoftext|>")
    assert tokenizer_appends_eos(tok)
    ids = end_ids(tok)
    end, im_end = tok.convert_tokens_to_ids("<|endoftext|>"), tok.convert_tokens_to_ids("<|im_end|>")
    assert ids[-1] == end and ids.count(end) == 1 and im_end not in ids  # not "... <|endoftext|> <|im_end|>"


@pytest.mark.parametrize("template", [None, "<|bos|> $A"], ids=["qwen2.5", "bos_only"])
def test_decoder_without_end_token_gets_one_eos(tmp_path, template):
    tok = save_bpe(tmp_path, template, eos="<|im_end|>", pad="<|endoftext|>")
    assert not tokenizer_appends_eos(tok)
    eos = tok.eos_token_id
    for text in ("the cat sits on the mat", " ".join(CORPUS)):  # short, and truncated to max_length
        ids = end_ids(tok, text)
        assert ids[-1] == eos and ids.count(eos) == 1 and len(ids) <= 16
