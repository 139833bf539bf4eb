"""Evaluation: declared tasks (task_file), metrics, scoring an encoder (evaluate), what `talas eval` loads
(models), runs (runs) and reports (report), retrieval corpora from the teacher cache (corpus)."""
