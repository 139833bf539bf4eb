"""Pure loss functions on tensors, with shapes and formulas in their docstrings; nothing here knows
about models, batches or configs (known-value tests: tests/unit/test_losses.py and each method's tests)."""
