"""LUKE self-attention through one `scaled_dot_product_attention` call, entity-aware or plain.

transformers' LukeSelfAttention computes entity-aware attention eagerly: four query/key score
blocks (word->word, word->entity, entity->word, entity->entity), concatenated, then one softmax.
The same scores come out of a single fused call by widening the head dimension to 2 * head_dim:

    word queries   [q_w2w, q_w2e]       word keys    [k, 0]
    entity queries [q_e2w, q_e2e]       entity keys  [0, k]

so a word query meets a word key as q_w2w . k and an entity key as q_w2e . k, and likewise for
entity queries. The softmax scale stays 1 / sqrt(head_dim), not 1 / sqrt(2 * head_dim), so the
result is exactly LUKE's four-block softmax. Values keep head_dim.

Hidden states stay as one (batch, words + entities, hidden) tensor through the whole encoder
(transformers splits and re-concatenates them in every sub-layer); `num_words` says where the
entities start.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(batch, seq, heads * dim) -> (batch, heads, seq, dim)."""
    batch, seq, width = x.shape
    return x.view(batch, seq, num_heads, width // num_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(batch, heads, seq, dim) -> (batch, seq, heads * dim)."""
    batch, heads, seq, dim = x.shape
    return x.transpose(1, 2).reshape(batch, seq, heads * dim)


def paired_queries(first: torch.Tensor, second: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Two (batch, seq, hidden) query projections -> (batch, heads, seq, 2 * head_dim), per head
    [first_h, second_h] side by side."""
    batch, seq, width = first.shape
    head_dim = width // num_heads
    pair = torch.stack([first.view(batch, seq, num_heads, head_dim),
                        second.view(batch, seq, num_heads, head_dim)], dim=3)
    return pair.view(batch, seq, num_heads, 2 * head_dim).transpose(1, 2)


def eager_attention(scores: torch.Tensor, value: torch.Tensor, mask: torch.Tensor,
                    dropout_p: float) -> torch.Tensor:
    """softmax(scores masked) -> dropout -> @ value. The CPU path while attention dropout is on:
    torch's fused CPU kernel has no dropout, and its math fallback costs more than this.
    The mask is added (its backward is free, unlike masked_fill's), and the dropout mask comes
    from rand_like, about twice as fast on CPU as the bernoulli_ inside F.dropout."""
    additive = torch.zeros(mask.shape, dtype=scores.dtype, device=scores.device)
    probs = torch.softmax(scores + additive.masked_fill_(~mask, torch.finfo(scores.dtype).min),
                          dim=-1)
    keep = torch.rand_like(probs).ge_(dropout_p).div_(1.0 - dropout_p)
    return (probs * keep) @ value


def fused_attention(query, key, value, mask, dropout_p: float, head_dim: int) -> torch.Tensor:
    """One scaled_dot_product_attention call; values narrower than the (widened) queries are
    zero-padded because the fused kernels (FlashAttention, the CPU flash kernel) want one head
    width, and the padding is cut off again."""
    width = value.shape[-1]
    if query.shape[-1] != width:
        value = F.pad(value, (0, query.shape[-1] - width))
    context = F.scaled_dot_product_attention(query, key, value, attn_mask=mask,
                                             dropout_p=dropout_p, scale=1.0 / math.sqrt(head_dim))
    return context[..., :width]


class FastLukeSelfAttention(nn.Module):
    """Holds exactly LukeSelfAttention's parameters (query, key, value and, for entity-aware
    attention, w2e_query, e2w_query, e2e_query); returns the attention context before the
    output projection, (batch, seq, hidden)."""

    def __init__(self, config):
        super().__init__()
        if config.hidden_size % config.num_attention_heads:
            raise ValueError(f"hidden_size {config.hidden_size} is not a multiple of "
                             f"num_attention_heads {config.num_attention_heads}")
        hidden = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_dim = hidden // self.num_heads
        self.use_entity_aware_attention = config.use_entity_aware_attention
        self.dropout_p = config.attention_probs_dropout_prob
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        if self.use_entity_aware_attention:
            self.w2e_query = nn.Linear(hidden, hidden)
            self.e2w_query = nn.Linear(hidden, hidden)
            self.e2e_query = nn.Linear(hidden, hidden)

    def forward(self, hidden: torch.Tensor, num_words: int, mask: torch.Tensor) -> torch.Tensor:
        """`mask`: bool (batch, 1, 1, seq), True where a key may be attended to."""
        dropout_p = self.dropout_p if self.training else 0.0
        entity_aware = self.use_entity_aware_attention and hidden.shape[1] > num_words
        if self.wants_eager(hidden, dropout_p):
            context = (self.eager_entity_aware(hidden, num_words, mask, dropout_p) if entity_aware
                       else self.eager_plain(hidden, mask, dropout_p))
        else:
            qkv = (self.entity_aware_qkv(hidden, num_words) if entity_aware
                   else self.plain_qkv(hidden))
            context = fused_attention(*qkv, mask, dropout_p, self.head_dim)
        return merge_heads(context)

    @staticmethod
    def wants_eager(hidden: torch.Tensor, dropout_p: float) -> bool:
        """Eager softmax on CPU while dropout is on (see eager_attention); fused otherwise."""
        return dropout_p > 0 and not hidden.is_cuda

    def eager_plain(self, hidden, mask, dropout_p):
        query, key, value = self.plain_qkv(hidden)
        return eager_attention(self.scaled(query) @ key.transpose(-1, -2), value, mask, dropout_p)

    def eager_entity_aware(self, hidden, num_words, mask, dropout_p):
        """The four score blocks as transformers computes them, without the identity's zeros
        (which double the query-key work of a math-path attention)."""
        words, entities = hidden[:, :num_words], hidden[:, num_words:]
        heads = [split_heads(x, self.num_heads) for x in self.project(
            words, (self.query, self.w2e_query, self.key, self.value))
            + self.project(entities, (self.e2w_query, self.e2e_query, self.key, self.value))]
        w2w, w2e, word_key, word_value, e2w, e2e, entity_key, entity_value = heads
        word_key, entity_key = word_key.transpose(-1, -2), entity_key.transpose(-1, -2)
        scores = torch.cat([
            torch.cat([self.scaled(w2w) @ word_key, self.scaled(w2e) @ entity_key], dim=-1),
            torch.cat([self.scaled(e2w) @ word_key, self.scaled(e2e) @ entity_key], dim=-1)],
            dim=-2)
        return eager_attention(scores, torch.cat([word_value, entity_value], dim=2), mask,
                               dropout_p)

    def scaled(self, query: torch.Tensor) -> torch.Tensor:
        return query * (1.0 / math.sqrt(self.head_dim))

    def plain_qkv(self, hidden: torch.Tensor):
        """Query, key and value heads from one matmul against the three stacked weights."""
        weight = torch.cat([self.query.weight, self.key.weight, self.value.weight])
        bias = torch.cat([self.query.bias, self.key.bias, self.value.bias])
        query, key, value = F.linear(hidden, weight, bias).chunk(3, dim=-1)
        return (split_heads(query, self.num_heads), split_heads(key, self.num_heads),
                split_heads(value, self.num_heads))

    def entity_aware_qkv(self, hidden: torch.Tensor, num_words: int):
        """Widened queries and keys of the concatenation identity (module docstring), values
        as usual. Words and entities each take one matmul: their two queries, key and value."""
        words, entities = hidden[:, :num_words], hidden[:, num_words:]
        word_q, word_q2, word_k, word_v = self.project(
            words, (self.query, self.w2e_query, self.key, self.value))
        ent_q, ent_q2, ent_k, ent_v = self.project(
            entities, (self.e2w_query, self.e2e_query, self.key, self.value))
        query = torch.cat([paired_queries(word_q, word_q2, self.num_heads),
                           paired_queries(ent_q, ent_q2, self.num_heads)], dim=2)
        zeros_w, zeros_e = torch.zeros_like(word_k), torch.zeros_like(ent_k)
        key = torch.cat([paired_queries(word_k, zeros_w, self.num_heads),
                         paired_queries(zeros_e, ent_k, self.num_heads)], dim=2)
        value = split_heads(torch.cat([word_v, ent_v], dim=1), self.num_heads)
        return query, key, value

    @staticmethod
    def project(x: torch.Tensor, linears) -> tuple[torch.Tensor, ...]:
        """x through several same-shaped Linear layers in one matmul, split back."""
        weight = torch.cat([linear.weight for linear in linears])
        bias = torch.cat([linear.bias for linear in linears])
        return F.linear(x, weight, bias).chunk(len(linears), dim=-1)
