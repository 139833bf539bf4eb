#!/usr/bin/env python3
"""Claim-mutation check: `python scripts/mutation_check.py` (CI runs it after the test suite, in .ci/run).

Each mutation is a small source edit that breaks one claim of README.md or BENCHMARKS.md the way a
real bug would. The check copies the package and its tests to a temporary folder, applies one
mutation at a time, runs only the tests named for it (pytest -x -q, two mutations at a time), and
exits non-zero if any mutation survives (its tests still pass), if a mutation's old text is not in
its file exactly once (so the list cannot rot silently when the code changes), or if the named tests
fail on the unmutated copy.

    python scripts/mutation_check.py                     # every mutation, then a table
    python scripts/mutation_check.py --list              # names, claims, edits and tests
    python scripts/mutation_check.py --only resume-ignored --only no-warmup

Adding a mutation is one four-line entry in MUTATIONS: name and claim; file and old text; new text;
the test node ids that must fail with it.
"""

from __future__ import annotations

import argparse
import os
import py_compile
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What the tests need from the checkout; data/ (12 MB, read-only in tests) is linked, not copied.
COPIED = ("talas", "tests", "config", "scripts", "main.py", "pyproject.toml")
LINKED = ("data",)
TIMEOUT_S = 600


@dataclass(frozen=True)
class Mutation:
    name: str
    claim: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]


M = Mutation
RESUME = ("tests/integration/test_resume.py::test_talas_resume_continues_from_the_checkpoint",
          "tests/integration/test_resume.py::test_stella_resume_mid_stage_continues_from_the_checkpoint")
REEXPORT = ("tests/integration/test_resume.py::test_stella_reexport_resumes_without_a_training_step",)
KEY_CHANGE = "tests/unit/test_cache.py::test_key_change_triggers_rebuild_with_the_new_setting"
SCHEDULE = "tests/integration/test_schedule.py::test_learning_rate_per_step"
ALIVE = "tests/integration/test_options_alive.py::test_option_changes_training"

MUTATIONS = [
    M("resume-ignored", "README: `--resume latest` continues a run from its newest checkpoint",
      "talas/train/loop.py", "saved = self.folder.load([s.name for s in stages]) if cfg.resume else None",
      "saved = None",
      RESUME + REEXPORT),
    M("resume-weights-not-loaded", "README: checkpoints are resumable (weights, optimiser, scheduler, RNG, position)",
      "talas/train/loop.py", 'method.load_state_dict(saved["model"])',
      "None",
      RESUME + REEXPORT),
    M("cache-key-ignores-revision", "README: the cache key records the teacher's revision (a re-saved local folder)",
      "talas/cache/ensure.py", 'SETTINGS = ("teacher", "teacher_revision", ',
      'SETTINGS = ("teacher", ',
      ("tests/unit/test_cache.py::test_resaved_teacher_at_the_same_path_triggers_rebuild",)),
    M("cache-build-ignores-pooling", "README: the cache is keyed by teacher pooling (and built with it)",
      "talas/models/teacher.py", "cfg.teacher_model_name, setup.pooling, teacher_max_length(cfg), setup.prompt,",
      'cfg.teacher_model_name, "last_token", teacher_max_length(cfg), setup.prompt,',
      (f"{KEY_CHANGE}[change0-pooling]",)),
    M("pooling-not-read-from-folder", "issue 23: a sentence-transformers teacher embeds through its own Pooling and "
      "Normalize modules (cached vector = SentenceTransformer(folder).encode)",
      "talas/models/teacher.py", "modules = st_folder_modules(path) if os.path.isdir(path) else None",
      "modules = None",
      ("tests/unit/test_teacher_folder.py::test_cached_vectors_equal_the_folders_own_encode",)),
    M("auto-pooling-not-by-architecture", "issue 23: a plain decoder teacher (Qwen3) pools its last token, an encoder "
      "(BERT) the mean, unless --pooling_method says otherwise",
      "talas/models/folder.py", "    if is_decoder(config):",
      "    if False:",
      ("tests/unit/test_teacher_folder.py::test_plain_models_pool_as_their_architecture",)),
    M("cache-build-ignores-max-length", "README: the cache is keyed by max_length (and built with it)",
      "talas/models/teacher.py", "cfg.teacher_model_name, setup.pooling, teacher_max_length(cfg), setup.prompt,",
      "cfg.teacher_model_name, setup.pooling, 512, setup.prompt,",
      (f"{KEY_CHANGE}[change1-max_length]",)),
    M("cache-build-ignores-prompt", "README: the cache is keyed by the teacher prompt (and built with it)",
      "talas/models/teacher.py", "cfg.teacher_model_name, setup.pooling, teacher_max_length(cfg), setup.prompt,",
      'cfg.teacher_model_name, setup.pooling, teacher_max_length(cfg), "",',
      (f"{KEY_CHANGE}[change2-prompt]",)),
    M("eos-compared-with-eos-only", "README: a last-token teacher whose tokenizer ends texts with another special token "
      "(Qwen3-Embedding's <|endoftext|>, eos <|im_end|>) gets no second end token",
      "talas/models/encoder.py", "return len(ids) > 0 and ids[-1] in set(tokenizer.all_special_ids) and ids[-len(plain):] != plain",
      "return tokenizer.eos_token_id is not None and len(ids) > 0 and ids[-1] == tokenizer.eos_token_id",
      ("tests/unit/test_encoders.py::test_qwen3_embedding_layout_keeps_the_tokenizers_own_end_token",
       "tests/unit/test_cache_end_token.py::test_end_token_is_the_tokenizers_own_or_the_appended_eos[qwen3_embedding]")),
    M("cache-key-ignores-end-token", "README: a last-token cache built before TALAS recorded the end token is rebuilt "
      "beside it, never served",
      "talas/cache/ensure.py", '"prompt", "dim", "end_token")',
      '"prompt", "dim")',
      ("tests/unit/test_cache_end_token.py::test_last_token_cache_without_an_end_token_is_rebuilt_beside_it",)),
    M("bf16-cache-truncates", "README: bfloat16 caches (values rounded to nearest, not truncated)",
      "talas/cache/format.py", "return vectors.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)",
      "return (vectors.float().view(torch.int32) >> 16).to(torch.int16).numpy().view(np.uint16)",
      ("tests/unit/test_cache.py::test_half_precision_caches[bfloat16]",)),
    M("every-rank-embeds-every-chunk", "README: the cache build is sharded: each rank embeds its own chunks",
      "talas/cache/build.py", "mine = todo[rank::world]",
      "mine = todo",
      ("tests/slow/test_multiprocess.py::test_two_cpu_processes_shard_the_cache_and_train",)),
    M("seed-pt-unsafe-unpickling", "README: a seed-format .pt cache is read with torch.load(weights_only=True)",
      "talas/cache/legacy.py", 'torch.load(path, map_location="cpu", weights_only=True)',
      'torch.load(path, map_location="cpu", weights_only=False)',
      ("tests/unit/test_cache.py::test_seed_format_pt_holding_a_pickled_object_is_refused_without_running_it",)),
    M("grad-accum-ignored", "README/config: --grad_accum_steps accumulates gradients over micro-batches",
      "talas/train/loop.py", "boundary = (offset + 1) % accum == 0 or offset + 1 == stop",
      "boundary = True",
      ("tests/integration/test_schedule.py::test_accumulating_two_batches_of_2_equals_one_batch_of_4",)),
    M("no-warmup", "train.py/README: AdamW with linear warm-up (--warmup_ratio)",
      "talas/train/setup.py", "if step < warmup:",
      "if False:",
      (f"{SCHEDULE}[cosine]", f"{SCHEDULE}[constant]")),
    M("no-decay", "train.py/README: cosine or linear decay after warm-up (--lr_scheduler)",
      "talas/train/setup.py", 'return 0.5 * (1.0 + math.cos(math.pi * progress)) if kind == "cosine" else 1.0 - progress',
      "return 1.0",
      (f"{SCHEDULE}[cosine]", f"{SCHEDULE}[linear]")),
    M("jsonl-splitlines", "README: .jsonl training and task files (a valid JSON line loads)",
      "talas/data/tables.py", 'enumerate(text.split("\\n"), start=1)',
      "enumerate(text.splitlines(), start=1)",
      ("tests/unit/test_tables.py::test_jsonl_strings_may_hold_unicode_line_separators",)),
    M("parquet-reads-every-column", "README: of Parquet data only the columns the rows use are read",
      "talas/data/columnar.py", "lambda c: parquet.read([c]).column(0)", "lambda c: parquet.read().column(c)",
      ("tests/integration/test_data_formats.py::test_parquet_reads_only_the_columns_the_rows_use",)),
    M("classifier-trains-on-scored-texts", "docs/evaluation.md: nothing is tuned on the split it is scored on",
      "talas/eval/evaluate.py", 'data["train"], dropped = without_texts_of(data["train"], data["report"])',
      "dropped = 0",
      ("tests/integration/test_evaluate.py::test_classifier_never_trains_on_the_texts_it_is_scored_on",)),
    M("pair-threshold-tuned-on-test", "docs/evaluation.md: the pair threshold is chosen on validation, applied to test",
      "talas/eval/evaluate.py", 'metrics.cosine_rows(*map(embed, tune.texts)), tune.targets,',
      'metrics.cosine_rows(*map(embed, report.texts)), report.targets,',
      ("tests/integration/test_evaluate.py::test_pair_threshold_is_chosen_on_validation_and_applied_to_test",)),
    M("run-folder-guard-off", "README/issue 9: a fresh run into a folder holding an earlier run stops with a message",
      "talas/train/checkpoint.py", "if found and not cfg.overwrite:",
      "if False:",
      ("tests/integration/test_run_folder.py::test_a_fresh_run_refuses_a_folder_holding_an_earlier_run",)),
    M("rotation-deletes-other-runs", "issue 9: checkpoint rotation only ever deletes the current run's checkpoints",
      "talas/train/checkpoint.py", 'ours = [c for c in stage_checkpoints(root) if c.record.get("run_id") == self.run_id]',
      "ours = stage_checkpoints(root)",
      ("tests/integration/test_run_folder.py::test_rotation_deletes_only_this_runs_checkpoints",)),
    M("chunk-checksums-ignored", "issue 9: a checksum per cache chunk, checked on open; corrupt chunks are rebuilt",
      "talas/cache/format.py", "return [c for c, crc in self.chunk_crcs(chunks).items() if crc != recorded[c]]",
      "return []",
      ("tests/integration/test_cache_integrity.py::test_overwritten_rows_are_caught_and_only_their_chunks_rebuilt",)),
    M("nan-loss-trains-on", "issue 9: a non-finite loss or gradient stops training with a message naming the step",
      "talas/train/loop.py", "bad = bad_loss is not None or not math.isfinite(norm)",
      "bad = False",
      ("tests/integration/test_faults_train.py::test_nan_loss_stops_keeps_the_last_good_checkpoint_and_exports_nothing",)),
    M("projection-not-exported", "README: the projection to the teacher's width is exported (--export_projection)",
      "talas/methods/talas.py", "return self.projection is not None and self.cfg.export_projection",
      "return False",
      ("tests/integration/test_projection.py::test_exported_student_lives_in_the_teachers_space",)),
    M("projection-ridge-fit-skipped", "README: a projection to a foreign width starts from a ridge fit (--projection_init ridge)",
      "talas/methods/talas.py", 'if self.projection is None or self.cfg.projection_init != "ridge":',
      "if True:",
      ("tests/integration/test_projection.py::test_ridge_initialised_projection_starts_closer_to_the_teacher",)),
    M("projection-own-lr-ignored", "README: --projection_lr gives the projection its own learning rate",
      "talas/methods/talas.py", 'return {"projection.": self.cfg.projection_lr} if self.projection is not None else {}',
      "return {}",
      ("tests/integration/test_projection.py::test_projection_trains_at_its_own_learning_rate",)),
    M("student-layers-checked-late", "README: every option is checked before anything heavy loads (--student_layers before the cache)",
      "talas/train/setup.py", "        chosen_layers(layer_choice(cfg), student_config.num_hidden_layers)",
      "        pass",
      ("tests/integration/test_student_layers.py::test_training_with_spread_out_layers_exports_the_smaller_model",)),
    M("student-layers-keeps-first-blocks", "README: --student_layers 0,5 keeps the first and last blocks, not the first two",
      "talas/models/encoder.py", "    blocks = [layers[i] for i in kept]",
      "    blocks = [layers[i] for i in range(len(kept))]",
      ("tests/integration/test_student_layers.py::test_the_kept_blocks_are_the_chosen_ones",)),
    M("dskd-ridge-query-random", "README: DSKD's ridge start sets the query projector to zero (uniform attention at the start)",
      "talas/methods/dskd.py", "        nn.init.zeros_(self.query.weight)",
      "        pass",
      ("tests/integration/test_dskd.py::test_ridge_start_fits_the_carrying_projectors_to_the_untrained_models",)),
    M("emo-cost-option-ignored", "README: EMO --ot_cost cosine sees a text's mean teacher state",
      "talas/losses/transport.py", '    if kind == "cosine":',
      '    if kind == "never":',
      ("tests/integration/test_emo.py::test_softmax_cost_is_blind_to_a_texts_mean_teacher_state_and_cosine_is_not",)),
    M("kd-scale-depends-on-width", "README: the KD term is the squared distance per vector, the same scale for any width",
      "talas/losses/vectors.py", "return diff.pow(2).sum(dim=-1).mean()",
      "return diff.pow(2).mean()",
      ("tests/unit/test_losses.py::test_kd_scale_does_not_depend_on_width",)),
    M("left-padding-not-shifted", "README: alignments are packed on padded positions (the teacher's left padding respected)",
      "talas/train/batching.py", "shift = [width - n if left else 0 for n in lengths]",
      "shift = [0 for n in lengths]",
      ("tests/unit/test_provision.py::test_pack_alignment_known_values_with_left_padded_teacher",)),
    M("alignment-recomputed-every-step", "issue 11: a text is tokenised and aligned once, never per step",
      "talas/train/batching.py", "new = sorted({int(i) for i in ids if int(i) not in self.memo})",
      "new = sorted({int(i) for i in ids})",
      ("tests/unit/test_provision.py::test_collator_adds_both_tokenizations_and_tokenizes_each_text_once",)),
    M("teacher-outputs-are-inference-tensors", "issue 11: online teacher states enter the loss as constants (backward works)",
      "talas/teacher/provision.py", "return x.to(torch.float32)[inverse]",
      "return x.to(torch.float32)",
      ("tests/unit/test_provision.py::test_online_teacher_fills_what_was_declared_as_autograd_constants",)),
    M("teacher-runs-every-row", "issue 17: the online teacher runs once per distinct text of a batch (both views share it)",
      "talas/teacher/provision.py", "out = self.encoder.forward_tokens({k: v[first] for k, v in feats.items()}, needs.layers, needs.attention_layers)",
      "out = self.encoder.forward_tokens(feats, needs.layers, needs.attention_layers); inverse = torch.arange(len(inverse), device=device)",
      ("tests/unit/test_provision.py::test_online_teacher_runs_each_distinct_text_once_and_copies_it_to_its_other_rows",
       "tests/integration/test_compare.py::test_online_teacher_forwards_are_batches_times_views")),
    M("attentions-without-eager", "issue 11: the teacher loads with eager attention when attentions are declared",
      "talas/teacher/provision.py", '{"attn_implementation": "eager"} if needs.attention_layers else {}',
      "{}",
      ("tests/unit/test_provision.py::test_provide_loads_eager_attention_only_when_attentions_are_declared",)),
    M("span-alignment-misses-dropped-chars", "issue 11: every non-special student token is covered by the span alignment",
      "talas/align/groups.py", "if (side, k) in linked or not other_pos:",
      "if True:",
      ("tests/unit/test_align.py::test_property_invariants_on_random_unicode",)),
    M("mined-map-not-mutual", "issue 11: the MinED map keeps reciprocal pairs only (one-to-one)",
      "talas/align/groups.py", "enumerate(best_t) if best_s[b] == a]",
      "enumerate(best_t)]",
      ("tests/unit/test_align.py::test_mined_pairs_known_values_and_ties_by_position",)),
    M("alignment-ignores-truncation", "issue 11: tokens beyond the other side's truncation are never aligned",
      "talas/align/groups.py", "and not (start < rng[1] and end > rng[0]):",
      "and False:",
      ("tests/unit/test_align.py::test_truncation_on_the_teacher_side_leaves_the_rest_of_the_student_unaligned",)),
    M("pieces-keep-tokenizer-markers", "issue 11: token pieces come from the text (##, Ġ, ▁ gone; byte tokens safe)",
      "talas/align/views.py", "piece = text[start:end]",
      "piece = tokens[k]",
      ("tests/unit/test_align.py::test_wordpiece_view_takes_pieces_from_the_text",)),
    M("dtw-ignores-weights", "METHODS.md CDM: DTW cost = edit distance × w_T × w_S",
      "talas/align/groups.py", "here[j] = best + row[j] * w * wt[j]",
      "here[j] = best + row[j]",
      ("tests/unit/test_align.py::test_dtw_weights_change_the_path",)),
    M("rebuild-replaces-other-cache", "README/issue 9: a rebuild never destroys a valid cache of other data or another teacher",
      "talas/cache/store.py", "target = path if free else keyed",
      "target = path",
      ("tests/integration/test_cache_integrity.py::test_rebuild_for_other_data_keeps_the_first_cache_and_both_are_found",)),
    M("teacher-path-not-normalised", "issue 9: model paths are normalised before they enter the cache key",
      "talas/cache/format.py", "return os.path.realpath(expanded) if os.path.isdir(expanded) else name",
      "return name",
      ("tests/integration/test_cache_integrity.py::test_teacher_path_spellings_share_one_key[trailing slash]",)),
    M("cache-build-without-lock", "issue 9: two builds of one cache path produce one valid cache (a lock)",
      "talas/cache/build.py", "lock.acquire(timeout=0)",
      "pass",
      ("tests/integration/test_cache_integrity.py::test_a_second_build_waits_for_the_lock_then_reuses_the_finished_cache",)),
    M("resume-recomputes-finished-chunks", "README: a killed cache build resumes at the first unfinished chunk",
      "talas/cache/planner.py", "return [c for c in range(n_chunks) if c not in done]",
      "return list(range(n_chunks))",
      ("tests/integration/test_faults_cache.py::test_killed_build_resumes_to_a_byte_identical_cache[cache_chunk_done:1-remaining0]",)),
    M("eval-missing-folder-unchecked", "README: bad input gives one clear message (talas eval on a missing folder)",
      "talas/cli/eval.py", "check_model_path(side[\"path\"], side[\"pooling\"])",
      "None",
      ("tests/integration/test_evaluate.py::test_eval_on_a_missing_model_folder_says_it_does_not_exist",)),
    M("dskd-projector-detached", "issue 12: DSKD trains every projector (the reference code left one detached)",
      "talas/methods/dskd.py", "t2s = cross_attend(scores, t_mask, self.t2s(std_scaled(t_states, t_mask)))",
      "t2s = cross_attend(scores, t_mask, self.t2s(std_scaled(t_states, t_mask)).detach())",
      ("tests/integration/test_dskd.py::test_every_projector_is_trained_and_each_term_reaches_what_it_should",)),
    M("dskd-attention-sees-padding", "issue 12: DSKD's cross-model attention is per sentence, masked on padding on both sides",
      "talas/losses/tokens.py", "scores = scores.float().masked_fill(~key_mask.bool().unsqueeze(1), torch.finfo(torch.float32).min)",
      "scores = scores.float()",
      ("tests/integration/test_dskd.py::test_cross_attend_softmax_runs_over_the_sentences_real_keys",
       "tests/integration/test_dskd.py::test_attention_is_per_sentence_a_padded_batch_equals_each_sentence_alone",
       "tests/integration/test_dskd.py::test_each_dskd_term_known_value_with_padding_on_both_sides")),
    M("ndcg-discount-off-by-one", "docs/evaluation.md: nDCG@10 discounts rank r by log2(r + 1), as trec_eval",
      "talas/eval/metrics.py", "discounts = 1.0 / np.log2(np.arange(2, 12))",
      "discounts = 1.0 / np.log2(np.arange(3, 13))",
      ("tests/integration/test_retrieval.py::test_retrieval_scores_known_values", "tests/integration/test_retrieval.py::test_retrieval_scores_match_trec_eval")),
    M("pairing-corpus-by-query-model", "docs/evaluation.md: --query_model encodes the queries, --corpus_model the corpus",
      "talas/eval/runs.py", 'encode_document = corpus_encoders["document"]',
      'encode_document = query_encoders["document"]',
      ("tests/integration/test_retrieval.py::test_student_queries_against_a_teacher_corpus",)),
    M("corpus-cache-unchecked", "docs/evaluation.md: a corpus cache of other vectors (teacher, pooling, prompt) is refused",
      "talas/eval/corpus.py", "if cosine.min() < SPOT_CHECK_COSINE:",
      "if False:",
      ("tests/integration/test_retrieval.py::test_a_cache_of_other_vectors_is_refused",)),
    M("compare-reruns-finished", "README: an interrupted `talas compare` resumes; finished methods are not rerun",
      "talas/compare/plan.py", "        if run.name in done:\n",
      "        if False:\n",
      ("tests/integration/test_compare.py::test_compare_resumes_without_rerunning_the_finished_method",)),
    M("compare-cache-per-method", "README: `talas compare` builds one teacher cache, shared by the methods that read it",
      "talas/cli/compare.py", 'argv += ["--cache_path", os.path.join(out, "cache", "teacher.safetensors")]',
      'argv += ["--cache_path", os.path.join(out, "runs", name, "cache", "teacher.safetensors")]',
      ("tests/integration/test_compare.py::test_compare_measures_every_registered_method",)),
    M("online-teacher-forwards-uncounted", "README: teacher forward passes are counted by a hook, not assumed",
      "talas/train/loop.py", "self.meter.watch_teacher(supply.online.encoder.model)",
      "None",
      ("tests/integration/test_compare.py::test_online_teacher_forwards_are_batches_times_views",)),
    M("emo-ira-columns-not-mapped", "issue 14: EMO's attention CKA compares columns of the same (MinED-paired) tokens, left padding included",
      "talas/methods/emo.py", "t_rel = pairs_t @ teacher_attn[t_layer].float().mean(1) @ pairs_t.transpose(1, 2)",
      "t_rel = pairs_t @ teacher_attn[t_layer].float().mean(1)[:, :, : pairs_t.shape[1]]",
      ("tests/integration/test_emo.py::test_ira_compares_columns_of_the_same_tokens_across_tokenizations",)),
    M("emo-sinkhorn-rows-unfitted", "issue 14: EMO's Sinkhorn plans satisfy both marginals (or report that they do not)",
      "talas/losses/transport.py", "            f = new_f\n",
      "            pass\n",
      ("tests/integration/test_emo.py::test_sinkhorn_known_plans", "tests/integration/test_emo.py::test_sinkhorn_batched_with_masks_matches_each_problem_alone",
       "tests/integration/test_emo.py::test_sinkhorn_reports_non_convergence")),
    M("cdm-weights-ignored", "issue 13: CDM's DTW cost is edit distance times both tokens' entropy weights",
      "talas/methods/cdm.py", "return dtw_groups(student, teacher, *weights)",
      "return dtw_groups(student, teacher)",
      ("tests/integration/test_cdm.py::test_entropy_weights_move_a_stray_token_to_the_confident_side",)),
    M("cdm-weights-padding-blind", "issue 13: a text's entropy weights do not depend on its padding side or batch",
      "talas/methods/cdm.py", "out[i] = tuple(weights[row][real].tolist())",
      "out[i] = tuple(weights[row][: len(ids[i])].tolist())",
      ("tests/integration/test_cdm.py::test_entropy_weights_per_text_whatever_the_padding_and_batching",)),
    M("dskd-kd-rate-ignored", "issue 22: every option is alive (DSKD's --kd_rate weighs InfoNCE against the DSKD terms)",
      "talas/methods/dskd.py", "(1 - cfg.kd_rate) * task + cfg.kd_rate * dskd",
      "(1 - 0.5) * task + 0.5 * dskd",
      (f"{ALIVE}[dskd-kd_rate]",)),
    M("cdm-w-kd-ignored", "issue 22: every option is alive (CDM's --w_kd weighs the aligned-group term)",
      "talas/methods/cdm.py", "cfg.w_kd * cdm",
      "0.1 * cdm",
      (f"{ALIVE}[cdm-w_kd]",)),
    M("online-talas-skips-ridge-start", "issue 22: a TALAS run with the online teacher starts its projection as the cached run does",
      "talas/methods/talas.py", "else:  # --cache_teacher false: the same texts through the online teacher, so both runs start alike",
      "else:\n            return",
      (f"{ALIVE}[talas-cache_teacher]",)),
    M("cdm-plain-dtw-refuses-texts", "issue 22: CDM --token_weights none runs plain DTW on every text",
      "talas/methods/cdm.py", "if self.table is None or pieces_match(student, teacher):",
      "if self.table is not None and pieces_match(student, teacher):",
      (f"{ALIVE}[cdm-token_weights=none]",)),
    M("stella-w-sim-ignored", "issue 22: every option is alive (Stella's --w_sim weighs L_sim)",
      "talas/methods/stella.py", "cfg.w_sim * metrics",
      "200.0 * metrics",
      (f"{ALIVE}[stella-w_sim]",)),
    M("emo-alpha-ignored", "issue 22: every option is alive (EMO's --alpha weighs the distillation terms)",
      "talas/methods/emo.py", "(1 - cfg.alpha) * task + cfg.alpha * (",
      "(1 - 0.5) * task + 0.5 * (",
      (f"{ALIVE}[emo-alpha]",)),
    M("allow-abbrev-re-enabled", "issue 23: flags are whole names (`--lr 1e-3` is an error suggesting --learning_rate, never --lr_scheduler)",
      "talas/cli/flags.py", 'kwargs["allow_abbrev"] = False',
      'kwargs["allow_abbrev"] = True',
      ("tests/integration/test_flags.py::test_flag_mistakes_are_one_line_with_the_closest_flags[FL1]",
       "tests/integration/test_flags.py::test_flag_mistakes_are_one_line_with_the_closest_flags[FL2]")),
    M("alias-silently-overridden", "issue 23: an option and its Hugging Face alias with different values are an error, not last-one-wins",
      "talas/config/options.py", "if option in resolved and coerce(cls, fields[option], resolved[option], source) != meant:",
      "if False:",
      ("tests/integration/test_flags.py::test_flag_mistakes_are_one_line_with_the_closest_flags[FL4]",
       "tests/integration/test_flags.py::test_an_option_and_its_alias_may_agree_but_not_differ")),
]


def snapshot(folder: str) -> None:
    """Copy the checkout's code and tests into ``folder`` once, so edits during the check do not leak in."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for name in COPIED:
        source = os.path.join(ROOT, name)
        if os.path.isdir(source):
            shutil.copytree(source, os.path.join(folder, name), ignore=ignore)
        elif os.path.exists(source):
            shutil.copy2(source, os.path.join(folder, name))
    for name in LINKED:
        if os.path.exists(os.path.join(ROOT, name)):
            os.symlink(os.path.join(ROOT, name), os.path.join(folder, name))


def check_edit(mutation: Mutation) -> str | None:
    """Why ``mutation`` cannot be applied to the checkout (None when its old text occurs exactly once)."""
    path = os.path.join(ROOT, mutation.file)
    if not os.path.isfile(path):
        return f"{mutation.file} does not exist"
    count = open(path, encoding="utf-8").read().count(mutation.old)
    return None if count == 1 else f"old text found {count} times in {mutation.file} (must be exactly once)"


def apply(folder: str, mutation: Mutation) -> None:
    path = os.path.join(folder, mutation.file)
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text.replace(mutation.old, mutation.new, 1))
    # A mutation that does not even compile would be "killed" by any test: that proves nothing.
    py_compile.compile(path, doraise=True)


def environment(folder: str) -> dict[str, str]:
    # PYTHONPATH puts the copy ahead of the editable install of the checkout (a meta-path hook that
    # comes after the path search); subprocesses the tests start (torchrun, main.py) inherit it.
    return {**os.environ, "PYTHONPATH": folder, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def run_tests(source: str, mutation: Mutation | None, tests: tuple[str, ...]) -> tuple[str, float, str]:
    """Run ``tests`` on a copy of the snapshot ``source`` with ``mutation`` applied (None: unmutated).

    Returns (outcome, seconds, output tail); outcome: killed / survived / passed / failed / error: why.
    """
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="talas-mutation-") as parent:
        folder = os.path.join(parent, "copy")
        shutil.copytree(source, folder, symlinks=True)
        if mutation is not None:
            try:
                apply(folder, mutation)
            except py_compile.PyCompileError as exc:
                return f"error: the mutated {mutation.file} does not compile ({exc.msg.strip()[:120]})", 0.0, ""
        probe = subprocess.run([sys.executable, "-c", "import talas; print(talas.__file__)"], cwd=folder,
                               env=environment(folder), capture_output=True, text=True)
        if not probe.stdout.startswith(folder):
            return f"error: the copy imports talas from {probe.stdout.strip() or probe.stderr[-200:]}", 0.0, ""
        command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
        try:
            result = subprocess.run(command, cwd=folder, env=environment(folder), capture_output=True, text=True,
                                    timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return ("killed (timeout)" if mutation else "error: timeout"), time.perf_counter() - began, ""
    seconds = time.perf_counter() - began
    tail = (result.stdout + result.stderr)[-3000:]
    # pytest: 0 all passed, 1 some test failed; 2-5 interrupted, internal error, usage error
    # (e.g. a node id that no longer exists), nothing collected: the check itself is broken.
    if result.returncode in (0, 1):
        failed = result.returncode == 1
        if mutation is None:
            return ("failed" if failed else "passed"), seconds, tail
        return ("killed" if failed else "survived"), seconds, tail
    return f"error: pytest exit status {result.returncode}", seconds, tail


def short(node: str) -> str:
    return node.split("::", 1)[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Apply each claim mutation to a copy and check its tests catch it.")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--only", action="append", metavar="NAME", help="run only this mutation (repeatable)")
    parser.add_argument("--jobs", type=int, default=2, help="mutations run at once (default 2)")
    parser.add_argument("--skip_baseline", action="store_true",
                        help="do not first run the named tests unmutated (CI: the suite has just passed them)")
    args = parser.parse_args(argv)

    names = [m.name for m in MUTATIONS]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        print(f"error: duplicate mutation names: {', '.join(sorted(duplicates))}", file=sys.stderr)
        return 2
    unknown = [n for n in args.only or () if n not in names]
    if unknown:
        print(f"error: unknown mutation(s) {', '.join(unknown)}; known: {', '.join(names)}", file=sys.stderr)
        return 2
    chosen = [m for m in MUTATIONS if not args.only or m.name in args.only]
    if args.list:
        for m in chosen:
            print(f"{m.name}\n  claim: {m.claim}\n  edit:  {m.file}: {m.old!r} -> {m.new!r}\n  tests: {', '.join(m.tests)}")
        return 0

    rotten = [(m, why) for m in chosen if (why := check_edit(m))]
    for m, why in rotten:
        print(f"error: mutation {m.name}: {why}; update its entry in {os.path.relpath(__file__, ROOT)}.", file=sys.stderr)
    runnable = [m for m in chosen if m not in dict(rotten)]
    baseline_tests = () if args.skip_baseline else tuple(dict.fromkeys(t for m in runnable for t in m.tests))

    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="talas-snapshot-") as source, ThreadPoolExecutor(max(1, args.jobs)) as pool:
        snapshot(source)
        baseline = pool.submit(run_tests, source, None, baseline_tests) if baseline_tests else None
        futures = [(m, pool.submit(run_tests, source, m, m.tests)) for m in runnable]
        results = [(m, f.result()) for m, f in futures]
        baseline_result = baseline.result() if baseline is not None else None
    total = time.perf_counter() - began

    print("| claim | mutation | tests | result | seconds |")
    print("|---|---|---|---|---:|")
    for m, (outcome, seconds, _) in results:
        print(f"| {m.claim} | {m.name}: `{m.file}` | {', '.join(short(t) for t in m.tests)} | {outcome} | {seconds:.0f} |")
    for m, why in rotten:
        print(f"| {m.claim} | {m.name}: `{m.file}` | {', '.join(short(t) for t in m.tests)} | error: {why} | |")
    bad = [(m, r) for m, r in results if not r[0].startswith("killed")]
    if baseline_result is not None:
        outcome, seconds, tail = baseline_result
        print(f"\nunmutated copy, all {len(baseline_tests)} named tests: {outcome} ({seconds:.0f} s)")
        if outcome != "passed":
            print(tail, file=sys.stderr)
            print("error: the named tests do not pass without a mutation, so the kills above prove nothing.",
                  file=sys.stderr)
            bad.append((None, baseline_result))
    for m, (outcome, _, tail) in bad:
        if m is not None:
            print(f"\n--- {m.name}: {outcome}\n{tail}", file=sys.stderr)
    killed = sum(1 for _, r in results if r[0].startswith("killed"))
    print(f"\n{killed}/{len(chosen)} mutations killed in {total:.0f} s ({args.jobs} at a time)")
    return 1 if bad or rotten else 0


if __name__ == "__main__":
    sys.exit(main())
