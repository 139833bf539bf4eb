"""Epoch order, length grouping, sharding and batch layout."""

import numpy as np
import pytest
import torch

from talas.data.examples import TrainingData
from talas.train.batching import PairCollator, epoch_batches, example_lengths


def test_epoch_order_is_a_function_of_seed_and_epoch_only():
    torch.manual_seed(123)
    a = epoch_batches(50, 8, seed=1, epoch=0)
    torch.manual_seed(999)  # global RNG state must not matter (resume relies on it)
    assert epoch_batches(50, 8, seed=1, epoch=0) == a
    assert epoch_batches(50, 8, seed=1, epoch=1) != a
    assert sorted(i for b in a for i in b) == list(range(50))


def test_length_grouping_cuts_padding_and_keeps_every_example():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 200, size=2000)
    plain = epoch_batches(2000, 16, 0, 0)
    grouped = epoch_batches(2000, 16, 0, 0, lengths=lengths)
    assert sorted(i for b in grouped for i in b) == list(range(2000))

    def padded(batches):
        return sum(len(b) * lengths[b].max() for b in batches)

    assert padded(grouped) < 0.7 * padded(plain)
    # batch order is still shuffled: consecutive batches are not monotone in length
    maxima = [lengths[b].max() for b in grouped]
    assert maxima != sorted(maxima) and maxima != sorted(maxima, reverse=True)


def test_ranks_get_disjoint_equal_shards():
    shards = [epoch_batches(45, 4, 3, 0, rank=r, world=2) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 6  # 12 batches, 11 full + 1 partial → 12 usable
    flat = [i for s in shards for b in s for i in b]
    assert len(flat) == len(set(flat))


class FakeTokenizerStudent:
    """Only the tokenize() interface of an Encoder: the collator's layout is what is tested."""

    def tokenize(self, texts):
        ids = [[len(t)] for t in texts]
        return {"input_ids": torch.tensor(ids), "attention_mask": torch.ones(len(ids), 1, dtype=torch.long)}


def make_data(kind="pair"):
    if kind == "single":
        texts = ["a", "bb", "a", "ccc"]
        return TrainingData("x", "single", texts, list(texts), [None] * 4)
    return TrainingData("x", "triplet", ["a", "b", "c"], ["pa", "pb", "pc"], ["na", None, "nc"])


def test_collator_layout_anchors_positives_negatives():
    data = make_data()
    batch = PairCollator(data, FakeTokenizerStudent())([2, 1])
    assert batch.texts == ["c", "b", "pc", "pb", "nc"]
    unique = data.unique_texts()
    assert [unique[i] for i in batch.text_ids.tolist()] == batch.texts
    assert batch.size == 2 and batch.single_view is False
    # Nothing of the teacher without a cache or an online teacher: those parts are None.
    assert batch.teacher_vectors is batch.teacher_mask is batch.teacher_features is batch.alignments is None


def test_single_view_sends_each_text_once():
    data = make_data("single")
    batch = PairCollator(data, FakeTokenizerStudent(), single_view=True)([0, 1, 2])
    assert batch.texts == ["a", "bb", "a"] and batch.single_view is True
    # pairs are still built when the method needs them (or the data is not single-text)
    assert len(PairCollator(data, FakeTokenizerStudent())([0, 1]).texts) == 4
    assert PairCollator(make_data(), FakeTokenizerStudent(), single_view=True).single_view is False


def test_example_lengths():
    assert example_lengths(make_data()).tolist() == [2 + 2, 2, 2 + 2]


@pytest.mark.parametrize("kind", ["pair", "single"])
def test_collator_gathers_teacher_rows(kind, tmp_path):
    from talas.cache.build import write_cache

    data = make_data(kind)
    unique = data.unique_texts()
    vectors = torch.arange(len(unique) * 3, dtype=torch.float32).reshape(len(unique), 3)
    manifest = {"format": "talas-teacher-cache/1", "dtype": "float32", "texts_sha256": ""}
    cache = write_cache(str(tmp_path / "c.safetensors"), manifest, unique, vectors)
    rows = cache.rows_for(unique)
    rows[0] = -1  # pretend the first text has no cached vector
    batch = PairCollator(data, FakeTokenizerStudent(), cache, rows)([0, 1])
    ids = batch.text_ids
    assert batch.teacher_mask.tolist() == (ids != 0).tolist()
    assert torch.equal(batch.teacher_vectors[batch.teacher_mask], vectors[ids[ids != 0]])
