"""Gradient norm of each EMO term on the student, on real models: `python bench/emo_grads.py --steps 30`.

Trains EMO under the protocol of bench/tune.py (--teacher mpnet: all-mpnet-base-v2 → all-MiniLM-L6-v2
cut to 2 layers) and, at the first and the last step, recomputes the task, IRA and OT terms alone
(each at weight 1) on that step's batch and prints ‖∂term/∂student‖. Shows which term actually
moves the student once the weights are applied. Extra flags go to the training run.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import minilm_path, mpnet_path  # noqa: E402
from tune import base_flags  # noqa: E402

TERMS = {"task": {"alpha": 0.0}, "ira": {"alpha": 1.0, "w_ira": 1.0, "w_ot": 0.0}, "ot": {"alpha": 1.0, "w_ira": 0.0, "w_ot": 1.0}}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--learning_rate", default="2e-4")
    args, extra = parser.parse_known_args(argv)
    import torch

    from talas.cli.train import resolve
    from talas.methods.emo import EmoMethod
    from talas.train.loop import train

    forward, seen = EmoMethod.forward, [0]

    def probed(self, batch):
        seen[0] += 1
        if seen[0] in (1, args.steps):
            student = [p for n, p in self.named_parameters() if p.requires_grad and n.startswith("student.")]
            cfg = self.cfg
            for name, weights in TERMS.items():
                self.cfg = dataclasses.replace(cfg, **weights)
                value, _ = forward(self, batch)
                grads = [g for g in torch.autograd.grad(value, student, allow_unused=True) if g is not None]
                norm = torch.sqrt(sum(g.float().pow(2).sum() for g in grads))
                print(f"\nstep {seen[0]} {name}: value {value.item():.4f} grad norm {norm.item():.4f}", flush=True)
            self.cfg = cfg
        return forward(self, batch)

    EmoMethod.forward = probed
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out", "emo_grads")
    flags = base_flags(mpnet_path(), minilm_path(), out) + [
        "--method", "emo", "--max_steps", str(args.steps), "--batch_size", "32", "--learning_rate", args.learning_rate,
        "--warmup_ratio", "0", "--overwrite", "true", *extra]
    cfg = resolve(flags, "talas train")
    train(cfg)


if __name__ == "__main__":
    main(sys.argv[1:])
