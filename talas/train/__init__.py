"""The training loop: set-up steps, batching, checkpoints and run folders, what a run measures."""
