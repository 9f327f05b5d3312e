"""The LM head and loss of one padded batch, forward and backward, three ways, interleaved in one process.

    uv run python bench/lm_head_bench.py [--rounds 3] [--batch 8] [--length 190] [--labelled 58]

- TRL's fused head scoring every position (what SFTTrainer did on the CPU before
  ``skill_adapter.training.trainer.score_completion_rows_only``);
- the same kernel scoring only the positions that carry a label (what it does now, and always did on CUDA);
- transformers' own loss over the full ``(batch, length, vocabulary)`` logits (what LLaMA-Factory trains with).

The shapes default to a batch of the commit-messages skill on SmolLM2-135M (hidden 576, vocabulary 49,152):
8 rows padded to 190 tokens, of which ~58 per row are the answer. Each way runs once per round in turn, so
that a load shared with other work costs them alike, after one untimed warm-up call each; the best of the
rounds is reported, with the ratio to transformers' full-logits loss.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from trl.kernels import ChunkedLogProbFunction

OUTPUTS = ("log_probs", "entropy", "is_top1")  # what SFTTrainer asks of the head (loss, entropy, accuracy)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=190)
    parser.add_argument("--labelled", type=int, default=58, help="answer tokens per row")
    parser.add_argument("--hidden", type=int, default=576)
    parser.add_argument("--vocab", type=int, default=49152)
    args = parser.parse_args()
    torch.manual_seed(0)
    batch, length, hidden, vocab = args.batch, args.length, args.hidden, args.vocab
    weight = torch.randn(vocab, hidden) * 0.02
    labels = torch.full((batch, length), -100)
    for row in range(batch):  # the answer after a prompt of varying length, then padding
        start = length // 2 - 5 * row
        labels[row, start : start + args.labelled] = torch.randint(0, vocab, (min(args.labelled, length - start),))
    states = torch.randn(batch, length, hidden)

    def trl_head(compact: bool) -> float:
        h = states.clone().requires_grad_()
        shifted, targets = h[:, :-1], labels[:, 1:]
        mask = targets != -100
        if compact:
            rows, row_targets = shifted[mask], targets[mask]
        else:
            rows, row_targets = shifted.reshape(-1, hidden), targets.clamp(min=0).reshape(-1)
        log_probs = ChunkedLogProbFunction.apply(rows, weight, None, row_targets, 1.0, 32768, None, 1.0, OUTPUTS)[0]
        if not compact:
            log_probs = log_probs.view(mask.shape).masked_fill(~mask, 0)
        loss = -log_probs.sum() / mask.sum()
        loss.backward()
        return float(loss.detach())

    def full_logits() -> float:
        h = states.clone().requires_grad_()
        logits = h @ weight.t()
        loss = F.cross_entropy(logits.float()[:, :-1].reshape(-1, vocab), labels[:, 1:].reshape(-1))
        loss.backward()
        return float(loss.detach())

    ways: dict[str, Callable[[], float]] = {
        "TRL fused head, every position": lambda: trl_head(False),
        "TRL fused head, labelled positions only": lambda: trl_head(True),
        "transformers full-logits loss": full_logits,
    }
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    losses: dict[str, float] = {}
    print(f"batch {batch} x {length}, {int((labels[:, 1:] != -100).sum())} labelled positions, hidden {hidden}, "
          f"vocabulary {vocab}, {torch.get_num_threads()} threads, load {os.getloadavg()}", flush=True)  # fmt: skip
    for run in ways.values():  # warm-up, not timed: the first call of each pays one-off set-up
        run()
    for _ in range(args.rounds):
        for name, run in ways.items():
            started = time.perf_counter()
            losses[name] = run()
            seconds[name].append(time.perf_counter() - started)
    baseline = min(seconds["transformers full-logits loss"])
    for name, times in seconds.items():
        print(f"{name:42s} best {min(times):6.2f} s ({min(times) / baseline:.2f}x the full-logits loss), "
              f"runs {[round(t, 2) for t in times]}, loss {losses[name]:.4f}")  # fmt: skip
    print(f"load after {os.getloadavg()}")


if __name__ == "__main__":
    main()
