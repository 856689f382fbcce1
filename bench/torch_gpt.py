"""Optional cross-check of cgrad's GPT with PyTorch (Debian's python3-torch; never a
dependency).

Loads a checkpoint written by examples/char_gpt.c (--save FILE) into the PyTorch
twin below with load_state_dict(strict=True), reads the vocabulary the example
saved beside it (FILE with ".safetensors" replaced by ".vocab.safetensors"),
encodes the text, and prints the held-out loss in nats per character over the
same validation split (the last 10% of the text, by position) that char_gpt's
--eval-every reports, on the same windows (`--windows N` windows of context + 1
characters spread evenly over the split, as char_gpt's --eval-windows).

The twin is cg_nn_gpt written plainly in PyTorch, so the state_dict names are
the same key for key:
  tok_emb.weight [V, E], pos_emb.weight [C, E],
  blocks.N.ln_1.{weight,bias}, blocks.N.attn.in_proj_weight [3E, E],
  blocks.N.attn.in_proj_bias [3E], blocks.N.attn.out_proj.{weight,bias},
  blocks.N.ln_2.{weight,bias}, blocks.N.mlp.0.{weight,bias} [4E, E], [4E],
  blocks.N.mlp.2.{weight,bias} [E, 4E], [E], ln_f.{weight,bias},
  head.weight (tied: the same Parameter as tok_emb.weight).

usage: /usr/bin/python3 bench/torch_gpt.py CHECKPOINT TEXT [--heads 4] [--windows 128]
"""
import argparse
import math
import os
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_checkpoint import load_safetensors  # noqa: E402


class Block(nn.Module):
    """cg_nn_transformer_block: pre-LayerNorm, GELU (tanh), causal."""

    def __init__(self, embed, heads, dropout=0.0, causal=True):
        super().__init__()
        self.causal = causal
        self.ln_1 = nn.LayerNorm(embed)
        self.attn = nn.MultiheadAttention(embed, heads, dropout=dropout, batch_first=True)
        self.resid_drop = nn.Dropout(dropout)
        self.ln_2 = nn.LayerNorm(embed)
        self.mlp = nn.Sequential(nn.Linear(embed, 4 * embed), nn.GELU(approximate="tanh"),
                                 nn.Linear(4 * embed, embed), nn.Dropout(dropout))

    def forward(self, x):
        t = x.shape[1]
        mask = None
        if self.causal:
            mask = torch.triu(torch.full((t, t), float("-inf"), dtype=x.dtype), 1)
        h = self.ln_1(x)
        a, _ = self.attn(h, h, h, attn_mask=mask, need_weights=False)
        x = x + self.resid_drop(a)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """cg_nn_gpt: ids [B, T] -> logits [B, T, V]."""

    def __init__(self, vocab, context, embed, layers, heads, dropout=0.0):
        super().__init__()
        self.tok_emb = nn.Embedding(vocab, embed)
        self.pos_emb = nn.Embedding(context, embed)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(embed, heads, dropout) for _ in range(layers))
        self.ln_f = nn.LayerNorm(embed)
        self.head = nn.Linear(embed, vocab, bias=False)
        self.head.weight = self.tok_emb.weight

    def forward(self, ids):
        pos = torch.arange(ids.shape[1])
        h = self.drop(self.tok_emb(ids) + self.pos_emb(pos))
        for b in self.blocks:
            h = b(h)
        return self.head(self.ln_f(h))


def vocab_path(checkpoint):
    stem = checkpoint[:-len(".safetensors")] if checkpoint.endswith(".safetensors") else checkpoint
    return stem + ".vocab.safetensors"


def twin_of(state, heads):
    vocab, embed = state["tok_emb.weight"].shape
    context = state["pos_emb.weight"].shape[0]
    layers = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    model = GPT(vocab, context, embed, layers, heads).to(state["tok_emb.weight"].dtype)
    model.load_state_dict({k: v for k, v in state.items() if not k.startswith("optimizer.")},
                          strict=True)
    return model.eval()


def heldout_loss(model, ids, context, windows):
    """Mean cross-entropy (nats per character) over `windows` windows of context + 1 ids,
    window w starting at w * ((len(ids) - context - 1) // windows): char_gpt's evaluation."""
    length = context + 1
    stride = (len(ids) - length) // windows
    total = 0.0
    with torch.no_grad():
        for w0 in range(0, windows, 16):
            starts = range(w0, min(w0 + 16, windows))
            chunk = torch.stack([ids[w * stride:w * stride + length] for w in starts])
            logits = model(chunk[:, :-1])
            total += nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                 chunk[:, 1:].reshape(-1),
                                                 reduction="sum").item()
    return total / (windows * context)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("checkpoint")
    p.add_argument("text")
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--windows", type=int, default=128)
    a = p.parse_args()
    state = load_safetensors(a.checkpoint)
    model = twin_of(state, a.heads)
    table = load_safetensors(vocab_path(a.checkpoint))["vocab"].tolist()
    ids_of = {b: i for i, b in enumerate(table)}
    with open(a.text, "rb") as f:
        data = f.read()
    ids = torch.tensor([ids_of[b] for b in data], dtype=torch.int64)
    val = ids[int(len(ids) * 0.9):]
    context = model.pos_emb.weight.shape[0]
    n = sum(p.numel() for p in model.parameters())
    loss = heldout_loss(model, val, context, a.windows)
    print(f"loaded {a.checkpoint} with strict=True: {n} parameters, "
          f"held-out loss {loss:.4f} nats/char ({math.exp(loss):.2f} perplexity)")


if __name__ == "__main__":
    main()
