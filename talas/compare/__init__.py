"""`talas compare`: plan several methods on one budget, run each in its own process, report them side by side."""
