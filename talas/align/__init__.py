"""Cross-tokenizer alignment: which student tokens and which teacher tokens carry the same text."""
