"""Evaluation: declared tasks, metrics, scoring an encoder, retrieval corpora from the teacher cache."""
