"""One factory for the model `luke-train` trains: transformers' LukeForMaskedLM or the fast one.

Both take the same keyword batch and share a state dict layout (pretrain/model_fast.py), so a
run can switch `model.impl` and still load its checkpoints and export the same way.
"""

from __future__ import annotations

from torch import nn
from transformers import LukeConfig, LukeForMaskedLM

from pretrain.model_fast import FastLukeForMaskedLM

IMPLEMENTATIONS = ("fast", "hf")


def tie_word_decoder(model: LukeForMaskedLM) -> LukeForMaskedLM:
    """Tie the MLM decoder to the word embeddings, as the reference LUKE pretraining does.
    transformers 5.x leaves it untied (`_tied_weights_keys` of LukeForMaskedLM names only the
    entity decoder and the lm_head bias), which would train a second 50K x hidden table."""
    model.lm_head.decoder.weight = model.luke.embeddings.word_embeddings.weight
    return model


def build_model(config: LukeConfig, impl: str = "fast", compile: bool = False,
                activation_checkpointing: bool = False) -> nn.Module:
    """A freshly initialised masked-LM LUKE: impl "hf" (transformers, word decoder tied) or
    "fast" (FastLukeForMaskedLM). `compile` runs torch.compile on the encoder layers in place
    (parameter names unchanged); `activation_checkpointing` recomputes each layer in backward."""
    if impl == "hf":
        model = tie_word_decoder(LukeForMaskedLM(config))
        if activation_checkpointing:
            # transformers 5.x renamed gradient_checkpointing_enable (kept, deprecated).
            enable = getattr(model, "activation_checkpointing_enable", None)
            (enable or model.gradient_checkpointing_enable)({"use_reentrant": False})
        layers = model.luke.encoder.layer
    elif impl == "fast":
        model = FastLukeForMaskedLM(config)
        model.set_activation_checkpointing(activation_checkpointing)
        layers = model.luke.encoder.layer
    else:
        raise ValueError(f"model impl {impl!r}: expected one of {', '.join(IMPLEMENTATIONS)}")
    if compile:
        for layer in layers:
            layer.compile()
    return model
