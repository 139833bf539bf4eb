"""The student keeps some of its model's blocks: the first N (--student_num_layers) or listed, spread-out
ones (--student_layers 0,2); what is kept are those very blocks, and the export is the smaller model."""

import pytest
import torch
from e2e_helpers import write_texts
from sentence_transformers import SentenceTransformer
from test_train import seed_command
from tiny_models import build_bert

from talas import cli
from talas.errors import ConfigError
from talas.models.encoder import keep_layers, layer_list, load_model


@pytest.fixture(scope="module")
def three_layer_bert(tmp_path_factory):
    return build_bert(tmp_path_factory.mktemp("bert3"), layers=3, seed=3)


def block_weights(model, index):
    return {k: v.clone() for k, v in layer_list(model)[index].state_dict().items()}


@pytest.mark.parametrize("choice, kept", [(2, [0, 1]), ((0, 2), [0, 2]), ((1,), [1])])
def test_the_kept_blocks_are_the_chosen_ones(three_layer_bert, choice, kept):
    full = load_model(str(three_layer_bert))
    model = load_model(str(three_layer_bert))
    keep_layers(model, choice)
    assert model.config.num_hidden_layers == len(kept) == len(layer_list(model))
    for position, index in enumerate(kept):
        got, expected = block_weights(model, position), block_weights(full, index)
        assert all(torch.equal(got[k], expected[k]) for k in expected)
    ids = torch.tensor([[2, 10, 11, 3]])
    assert model(input_ids=ids).last_hidden_state.shape == (1, 4, 32)


@pytest.mark.parametrize("choice, message", [
    ((2, 0), "--student_layers 2,0: list blocks of this model (0..2) in increasing order, each once."),
    ((0, 0), "--student_layers 0,0"),
    ((0, 3), "--student_layers 0,3"),
    (4, "--student_num_layers must be between 1 and 3 for this model, got 4."),
])
def test_bad_choices_name_the_valid_blocks(three_layer_bert, choice, message):
    with pytest.raises(ConfigError) as info:
        keep_layers(load_model(str(three_layer_bert)), choice)
    assert message in str(info.value)


def test_training_with_spread_out_layers_exports_the_smaller_model(tmp_path, monkeypatch, three_layer_bert, tiny_qwen3):
    monkeypatch.chdir(tmp_path)
    write_texts(tmp_path)
    argv = seed_command("texts.csv", three_layer_bert, tiny_qwen3, "run", "--student_layers", "0,2", "--epochs", "1",
                        "--student_pooling", "mean", "--cache_path", "c.safetensors")
    assert cli.main(argv) == 0
    exported = SentenceTransformer("run/model", device="cpu")
    assert exported[0].auto_model.config.num_hidden_layers == 2
    assert "(layers 0, 2)" in open("run/model/README.md", encoding="utf-8").read()
    # a bad list fails before the teacher cache is built
    bad = seed_command("texts.csv", three_layer_bert, tiny_qwen3, "bad", "--student_layers", "1,0", "--cache_path", "bad.safetensors")
    assert cli.main(bad) == 2
    assert not (tmp_path / "bad.safetensors").exists()
