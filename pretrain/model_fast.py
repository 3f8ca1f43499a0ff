"""FastLukeForMaskedLM: transformers' LukeForMaskedLM, same parameters, faster training step.

The module tree copies LukeForMaskedLM's names and shapes exactly, so a state dict saved by one
loads strictly into the other and checkpoints/export are shared. What differs is only how the
step is computed:
- hidden states of words and entities stay one tensor through the encoder;
- attention is one `scaled_dot_product_attention` call per layer, entity-aware attention
  included (pretrain/fast_attention.py); query/key/value share one matmul; on CPU while
  attention dropout is on (the fused CPU kernel has none) a lean eager softmax runs instead;
- the prediction heads run only on the positions that carry a label (label != -100): the rows
  are gathered before the head, so the 32K-500K wide decoders cost 15% of what they cost over
  every position;
- on CPU the lookups into the two tied tables give sparse gradients that autograd adds in
  place into the decoders' dense ones (`sparse_lookup_grads`): the parameters' .grad stay dense;
- on CUDA the forward runs under bf16 autocast (losses in fp32); `compile_layers()` compiles
  each encoder layer in place and `activation_checkpointing` recomputes layers in backward.

Measured (luke-bench, CPU, small): torch.compile of the layers was slower than eager on CPU,
so it stays an option; unpadding was not built: the bench batches are packed 512-word
sequences and the collator pads to the micro-batch's longest, leaving ~5% padding tokens.

Tied weights (as the reference LUKE pretraining ties them): `lm_head.decoder.weight` is the word
embedding table, `lm_head.decoder.bias` is `lm_head.bias`, `entity_predictions.decoder.weight`
is the 256-wide entity table; `entity_predictions.bias` is its own parameter. NOTE:
transformers 5.x's LukeForMaskedLM ties only the last two (its `_tied_weights_keys` lacks the
word decoder); `pretrain.models.build_model("hf")` ties it so both implementations train the
same model.

Outputs (`FastLukeOutput`): `loss = mlm_loss + mep_loss`; `logits` is (n_masked_words, vocab)
over the positions where `labels != -100`, in row-major (batch, position) order, and
`entity_logits` likewise over `entity_labels != -100`. transformers returns (batch, seq, vocab)
instead; `logits == hf.logits[labels != -100]`. Without `labels` (or `entity_labels`) the part is
None, as in transformers; with labels but not a single labelled position the part is 0 (with a
gradient path), where transformers' mean over nothing gives NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import LukeConfig
from transformers.activations import ACT2FN

from pretrain.fast_attention import FastLukeSelfAttention

IGNORE_INDEX = -100


@dataclass
class FastLukeOutput:
    loss: torch.Tensor | None
    mlm_loss: torch.Tensor | None
    mep_loss: torch.Tensor | None
    logits: torch.Tensor | None          # (n labelled words, vocab_size)
    entity_logits: torch.Tensor | None   # (n labelled entities, entity_vocab_size)


def roberta_position_ids(input_ids: torch.Tensor, pad_token_id: int) -> torch.Tensor:
    """Positions counted from pad_token_id + 1 over non-pad tokens; pads get pad_token_id."""
    not_pad = input_ids.ne(pad_token_id).long()
    return torch.cumsum(not_pad, dim=1) * not_pad + pad_token_id


class LayerNormResidual(nn.Module):
    """dense -> dropout -> LayerNorm(x + residual): LukeSelfOutput / LukeOutput."""

    def __init__(self, in_size: int, config: LukeConfig):
        super().__init__()
        self.dense = nn.Linear(in_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class FastLukeAttention(nn.Module):
    def __init__(self, config: LukeConfig):
        super().__init__()
        self.self = FastLukeSelfAttention(config)
        self.output = LayerNormResidual(config.hidden_size, config)

    def forward(self, hidden, num_words, mask):
        return self.output(self.self(hidden, num_words, mask), hidden)


class FastLukeIntermediate(nn.Module):
    def __init__(self, config: LukeConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = ACT2FN[config.hidden_act]

    def forward(self, x):
        return self.act(self.dense(x))


class FastLukeLayer(nn.Module):
    def __init__(self, config: LukeConfig):
        super().__init__()
        self.attention = FastLukeAttention(config)
        self.intermediate = FastLukeIntermediate(config)
        self.output = LayerNormResidual(config.intermediate_size, config)

    def forward(self, hidden: torch.Tensor, num_words: int, mask: torch.Tensor) -> torch.Tensor:
        attended = self.attention(hidden, num_words, mask)
        return self.output(self.intermediate(attended), attended)


class FastLukeEncoder(nn.Module):
    def __init__(self, config: LukeConfig):
        super().__init__()
        self.layer = nn.ModuleList(FastLukeLayer(config) for _ in range(config.num_hidden_layers))
        self.activation_checkpointing = False

    def forward(self, hidden, num_words, mask):
        for layer in self.layer:
            if self.activation_checkpointing and self.training:
                hidden = checkpoint(layer, hidden, num_words, mask, use_reentrant=False)
            else:
                hidden = layer(hidden, num_words, mask)
        return hidden


class FastLukeEmbeddings(nn.Module):
    """Word + RoBERTa position + token type embeddings (LukeEmbeddings' parameters)."""

    def __init__(self, config: LukeConfig):
        super().__init__()
        pad = config.pad_token_id
        self.pad_token_id = pad
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=pad)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size,
                                                padding_idx=pad)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids, token_type_ids=None, position_ids=None, sparse_grad=False):
        if position_ids is None:
            position_ids = roberta_position_ids(input_ids, self.pad_token_id)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        embedded = (lookup(self.word_embeddings, input_ids, sparse_grad)
                    + self.position_embeddings(position_ids)
                    + self.token_type_embeddings(token_type_ids))
        return self.dropout(self.LayerNorm(embedded))


class FastLukeEntityEmbeddings(nn.Module):
    """Entity table (projected to hidden) + mean of the mention's position embeddings + type."""

    def __init__(self, config: LukeConfig):
        super().__init__()
        self.entity_embeddings = nn.Embedding(config.entity_vocab_size, config.entity_emb_size,
                                              padding_idx=0)
        if config.entity_emb_size != config.hidden_size:
            self.entity_embedding_dense = nn.Linear(config.entity_emb_size, config.hidden_size,
                                                    bias=False)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, entity_ids, position_ids, token_type_ids=None, sparse_grad=False):
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(entity_ids)
        embedded = lookup(self.entity_embeddings, entity_ids, sparse_grad)
        if hasattr(self, "entity_embedding_dense"):
            embedded = self.entity_embedding_dense(embedded)
        embedded = (embedded + self.mention_position_embeddings(position_ids)
                    + self.token_type_embeddings(token_type_ids))
        return self.dropout(self.LayerNorm(embedded))

    def mention_position_embeddings(self, position_ids: torch.Tensor) -> torch.Tensor:
        """(batch, entities, max_mention_length) positions padded with -1 -> the mean position
        embedding of each mention, (batch, entities, hidden). One weighted sum per entity (a
        sum-mode embedding bag), instead of materialising every mention position's vector."""
        valid = position_ids.ne(-1)
        weights = valid.to(self.position_embeddings.weight.dtype)
        weights = weights / weights.sum(dim=-1, keepdim=True).clamp(min=1e-7)
        batch, entities, width = position_ids.shape
        # Outside autocast: embedding_bag wants its weights and per-sample weights in one dtype.
        with torch.autocast(position_ids.device.type, enabled=False):
            pooled = F.embedding_bag(position_ids.clamp(min=0).view(-1, width),
                                     self.position_embeddings.weight, mode="sum",
                                     per_sample_weights=weights.view(-1, width))
        return pooled.view(batch, entities, -1)


class FastLukeModel(nn.Module):
    """Embeddings + encoder (+ the pooler, unused by pretraining, kept for the state dict)."""

    def __init__(self, config: LukeConfig):
        super().__init__()
        self.embeddings = FastLukeEmbeddings(config)
        self.entity_embeddings = FastLukeEntityEmbeddings(config)
        self.encoder = FastLukeEncoder(config)
        self.pooler = nn.Module()
        self.pooler.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                entity_ids=None, entity_attention_mask=None, entity_token_type_ids=None,
                entity_position_ids=None, sparse_grads=(False, False)
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Final (word, entity) hidden states; entity is None without entity_ids.
        `sparse_grads`: (words, entities), whether that table's lookup gives a sparse gradient."""
        hidden = self.embeddings(input_ids, token_type_ids, position_ids, sparse_grads[0])
        num_words = hidden.shape[1]
        mask = ones_mask(input_ids) if attention_mask is None else attention_mask.bool()
        if entity_ids is not None:
            entities = self.entity_embeddings(entity_ids, entity_position_ids,
                                              entity_token_type_ids, sparse_grads[1])
            hidden = torch.cat([hidden, entities.to(hidden.dtype)], dim=1)
            entity_mask = (ones_mask(entity_ids) if entity_attention_mask is None
                           else entity_attention_mask.bool())
            mask = torch.cat([mask, entity_mask], dim=1)
        hidden = self.encoder(hidden, num_words, mask[:, None, None, :])
        if entity_ids is None:
            return hidden, None
        return hidden[:, :num_words], hidden[:, num_words:]


def lookup(table: nn.Embedding, ids: torch.Tensor, sparse_grad: bool) -> torch.Tensor:
    return F.embedding(ids, table.weight, table.padding_idx, sparse=sparse_grad)


def ones_mask(ids: torch.Tensor) -> torch.Tensor:
    return torch.ones(ids.shape, dtype=torch.bool, device=ids.device)


class FastLukeLMHead(nn.Module):
    """dense -> gelu -> LayerNorm -> decoder (weight tied to the word embeddings)."""

    def __init__(self, config: LukeConfig, word_embeddings: nn.Embedding):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)
        self.decoder.weight = word_embeddings.weight
        self.bias = self.decoder.bias

    def forward(self, x):
        return self.decoder(self.layer_norm(F.gelu(self.dense(x))))


class FastEntityPredictionHead(nn.Module):
    """dense -> act -> LayerNorm (256-d) -> decoder (the entity table) + bias."""

    def __init__(self, config: LukeConfig, entity_table: nn.Embedding):
        super().__init__()
        self.transform = nn.Module()
        self.transform.dense = nn.Linear(config.hidden_size, config.entity_emb_size)
        self.transform.LayerNorm = nn.LayerNorm(config.entity_emb_size, eps=config.layer_norm_eps)
        self.act = ACT2FN[config.hidden_act]
        self.decoder = nn.Linear(config.entity_emb_size, config.entity_vocab_size, bias=False)
        self.decoder.weight = entity_table.weight
        self.bias = nn.Parameter(torch.zeros(config.entity_vocab_size))

    def forward(self, x):
        x = self.transform.LayerNorm(self.act(self.transform.dense(x)))
        return F.linear(x, self.decoder.weight, self.bias)


class FastLukeForMaskedLM(nn.Module):
    """Drop-in for LukeForMaskedLM's training forward; see the module docstring."""

    # (tied key, key it is tied to) in the state dict: both are saved, and must agree on load.
    TIED_KEYS = (("lm_head.decoder.weight", "luke.embeddings.word_embeddings.weight"),
                 ("lm_head.decoder.bias", "lm_head.bias"),
                 ("entity_predictions.decoder.weight",
                  "luke.entity_embeddings.entity_embeddings.weight"))

    def __init__(self, config: LukeConfig):
        super().__init__()
        self.config = config
        self.luke = FastLukeModel(config)
        self.lm_head = FastLukeLMHead(config, self.luke.embeddings.word_embeddings)
        self.entity_predictions = FastEntityPredictionHead(
            config, self.luke.entity_embeddings.entity_embeddings)
        self.sparse_grads_on_cpu = True
        self.apply(self.init_module)
        self.register_load_state_dict_pre_hook(check_tied_keys)

    def init_module(self, module: nn.Module) -> None:
        """transformers' LukePreTrainedModel initialisation, so training from scratch starts
        from the same distribution whichever implementation runs."""
        std = self.config.initializer_range
        if module is self.lm_head.decoder or module is self.entity_predictions.decoder:
            return  # tied to an embedding table, initialised there
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=std)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, (FastLukeLMHead, FastEntityPredictionHead)):
            nn.init.zeros_(module.bias)

    def set_activation_checkpointing(self, enabled: bool = True) -> None:
        self.luke.encoder.activation_checkpointing = enabled

    def compile_layers(self, **options) -> None:
        """torch.compile each encoder layer in place (parameter names unchanged). The heads stay
        eager: their row count (masked positions) changes every batch."""
        for layer in self.luke.encoder.layer:
            layer.compile(**options)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                entity_ids=None, entity_attention_mask=None, entity_token_type_ids=None,
                entity_position_ids=None, labels=None, entity_labels=None) -> FastLukeOutput:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=input_ids.is_cuda):
            words, entities = self.luke(input_ids, attention_mask, token_type_ids, position_ids,
                                        entity_ids, entity_attention_mask, entity_token_type_ids,
                                        entity_position_ids,
                                        self.sparse_lookup_grads(input_ids, labels, entity_labels))
            mlm_loss, logits = masked_prediction(self.lm_head, words, labels)
            mep_loss, entity_logits = masked_prediction(self.entity_predictions, entities,
                                                        entity_labels)
        parts = [part for part in (mlm_loss, mep_loss) if part is not None]
        loss = sum(parts[1:], parts[0]) if parts else None
        return FastLukeOutput(loss, mlm_loss, mep_loss, logits, entity_logits)

    def sparse_lookup_grads(self, input_ids, labels, entity_labels) -> tuple[bool, bool]:
        """Whether each tied table's lookup should give a sparse gradient: on CPU, where a step
        otherwise allocates three fresh table-sized gradients (lookup, decoder, their sum) and
        page-faults through each. When its head runs (its labels are given), the decoder's dense
        gradient reaches the table too, and autograd adds the sparse one into it in place, so
        the parameter's .grad is dense as usual."""
        on_cpu = self.sparse_grads_on_cpu and not input_ids.is_cuda
        return on_cpu and labels is not None, on_cpu and entity_labels is not None


def masked_prediction(head: nn.Module, hidden: torch.Tensor | None,
                      labels: torch.Tensor | None):
    """(mean cross-entropy, logits) of `head` over the rows whose label is not -100 only."""
    if hidden is None or labels is None:
        return None, None
    labels = labels.to(hidden.device).reshape(-1)
    rows = labels.ne(IGNORE_INDEX).nonzero().squeeze(1)
    logits = head(hidden.reshape(-1, hidden.shape[-1]).index_select(0, rows))
    if rows.numel() == 0:
        return logits.float().sum(), logits
    return F.cross_entropy(logits.float(), labels.index_select(0, rows)), logits


def check_tied_keys(module, state_dict, prefix, *args) -> None:
    """Refuse a state dict whose tied tensors disagree (loading would keep one silently); fill a
    missing tied key from its source, as transformers does when it drops tied copies."""
    for tied, source in FastLukeForMaskedLM.TIED_KEYS:
        tied, source = prefix + tied, prefix + source
        if tied not in state_dict and source in state_dict:
            state_dict[tied] = state_dict[source]
        elif tied in state_dict and source in state_dict and not torch.equal(
                state_dict[tied], state_dict[source]):
            raise ValueError(f"state dict: {tied!r} differs from {source!r}, but this model ties "
                             f"them (was the checkpoint trained with the word decoder untied?)")
