"""Pure loss functions on tensors, with shapes and formulas in their docstrings."""
