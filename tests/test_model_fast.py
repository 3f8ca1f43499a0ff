"""FastLukeForMaskedLM against transformers' LukeForMaskedLM on tiny random weights.

Parity in fp32 on CPU (dropout off): same losses, same logits at the labelled positions, same
gradient for every parameter, state dicts that load both ways; plus the options (compile,
activation checkpointing) and the edge cases (no labelled entity, no entities at all).
"""

from __future__ import annotations

import pytest
import torch
from transformers import LukeConfig, LukeForMaskedLM

from pretrain.fast_attention import FastLukeSelfAttention
from pretrain.model_fast import FastLukeForMaskedLM
from pretrain.models import build_model

ATOL = 1e-5
WORDS, ENTITIES, MENTION = 24, 7, 4
MASK_ENTITY = 2


def tiny_config(entity_aware: bool, dropout: float = 0.0, **overrides) -> LukeConfig:
    return LukeConfig(vocab_size=120, entity_vocab_size=60, hidden_size=32, entity_emb_size=16,
                      num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                      max_position_embeddings=WORDS + 2, use_entity_aware_attention=entity_aware,
                      hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
                      **overrides)


def make_batch(seed: int = 0, batch: int = 3) -> dict[str, torch.Tensor]:
    """Words padded in row 1, entities padded in row 0, mentions of 1..MENTION tokens, some
    words and entities masked (entity input replaced by [MASK], label the true id)."""
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, 120, (batch, WORDS), generator=g)
    attention_mask = torch.ones(batch, WORDS, dtype=torch.long)
    input_ids[1, 17:], attention_mask[1, 17:] = 1, 0
    labels = torch.full_like(input_ids, -100)
    picked = (torch.rand(batch, WORDS, generator=g) < 0.3) & attention_mask.bool()
    labels[picked] = input_ids[picked]
    entity_ids = torch.randint(4, 60, (batch, ENTITIES), generator=g)
    entity_mask = torch.ones(batch, ENTITIES, dtype=torch.long)
    entity_ids[0, 5:], entity_mask[0, 5:] = 0, 0
    positions = torch.full((batch, ENTITIES, MENTION), -1)
    for b in range(batch):
        for e in range(int(entity_mask[b].sum())):
            start = int(torch.randint(0, 16, (), generator=g))
            length = int(torch.randint(1, MENTION + 1, (), generator=g))
            positions[b, e, :length] = torch.arange(start, start + length)
    entity_labels = torch.full_like(entity_ids, -100)
    for b, e in [(1, 2), (2, 0), (2, 5)]:
        entity_labels[b, e], entity_ids[b, e] = entity_ids[b, e], MASK_ENTITY
    return dict(input_ids=input_ids, attention_mask=attention_mask, entity_ids=entity_ids,
                entity_attention_mask=entity_mask, entity_position_ids=positions,
                labels=labels, entity_labels=entity_labels)


def twin_models(config: LukeConfig) -> tuple[LukeForMaskedLM, FastLukeForMaskedLM]:
    torch.manual_seed(0)
    hf = build_model(config, "hf")
    fast = build_model(config, "fast")
    fast.load_state_dict(hf.state_dict())
    return hf, fast


def assert_same_step(hf, fast, batch):
    """Same losses, logits at labelled positions and gradients (model modes as given)."""
    want, got = hf(**batch), fast(**batch)
    for name in ("loss", "mlm_loss", "mep_loss"):
        torch.testing.assert_close(getattr(got, name), getattr(want, name), atol=ATOL, rtol=0)
    torch.testing.assert_close(got.logits, want.logits[batch["labels"] != -100],
                               atol=ATOL, rtol=0)
    torch.testing.assert_close(got.entity_logits,
                               want.entity_logits[batch["entity_labels"] != -100],
                               atol=ATOL, rtol=0)
    want.loss.backward()
    got.loss.backward()
    assert_same_gradients(hf, fast)


def assert_same_gradients(reference: torch.nn.Module, model: torch.nn.Module):
    """Every parameter of `reference` has the same gradient (or none) in `model`."""
    params = dict(model.named_parameters())
    for name, param in reference.named_parameters():
        other = params[name].grad
        if param.grad is None:
            assert other is None, f"{name}: a gradient where the reference has none"
        else:
            torch.testing.assert_close(other, param.grad, atol=ATOL, rtol=0,
                                       msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("entity_aware", [False, True], ids=["plain", "entity-aware"])
def test_same_losses_logits_and_gradients_as_transformers(entity_aware):
    hf, fast = twin_models(tiny_config(entity_aware))
    assert_same_step(hf, fast, make_batch())


@pytest.mark.parametrize("entity_aware", [False, True], ids=["plain", "entity-aware"])
def test_eager_cpu_attention_path_matches_transformers(entity_aware, monkeypatch):
    """The path CPU training takes while attention dropout is on, checked with dropout off."""
    monkeypatch.setattr(FastLukeSelfAttention, "wants_eager", staticmethod(lambda hidden, p: True))
    hf, fast = twin_models(tiny_config(entity_aware))
    assert_same_step(hf, fast, make_batch(seed=2))


def test_explicit_type_and_position_ids_match_transformers():
    hf, fast = twin_models(tiny_config(True, type_vocab_size=2))
    batch = make_batch(seed=1)
    batch["token_type_ids"] = (torch.arange(WORDS) >= 10).long().expand(3, -1)
    batch["entity_token_type_ids"] = torch.ones(3, ENTITIES, dtype=torch.long)
    batch["position_ids"] = torch.arange(2, WORDS + 2).expand(3, -1)
    assert_same_step(hf, fast, batch)


def test_words_only_batch_matches_transformers():
    hf, fast = twin_models(tiny_config(True))
    words_only = ("input_ids", "attention_mask", "labels")
    batch = {k: v for k, v in make_batch().items() if k in words_only}
    want, got = hf(**batch), fast(**batch)
    torch.testing.assert_close(got.loss, want.loss, atol=ATOL, rtol=0)
    assert got.mep_loss is None and want.mep_loss is None


def test_state_dicts_have_the_same_keys_and_load_both_ways():
    config = tiny_config(True)
    hf, fast = build_model(config, "hf"), build_model(config, "fast")
    hf_shapes = {k: v.shape for k, v in hf.state_dict().items()}
    assert {k: v.shape for k, v in fast.state_dict().items()} == hf_shapes
    fresh_hf = LukeForMaskedLM(config)  # untied word decoder in transformers 5: loads anyway
    fresh_hf.load_state_dict(fast.state_dict(), strict=True)
    fast.load_state_dict(hf.state_dict(), strict=True)
    batch = make_batch()
    hf.eval(), fast.eval()
    torch.testing.assert_close(fast(**batch).loss, hf(**batch).loss, atol=ATOL, rtol=0)


def test_fast_model_ties_decoders_to_embedding_tables():
    fast = build_model(tiny_config(False), "fast")
    assert fast.lm_head.decoder.weight is fast.luke.embeddings.word_embeddings.weight
    assert fast.lm_head.decoder.bias is fast.lm_head.bias
    assert (fast.entity_predictions.decoder.weight
            is fast.luke.entity_embeddings.entity_embeddings.weight)
    assert fast.entity_predictions.bias.shape == (60,)
    assert torch.all(fast.luke.embeddings.word_embeddings.weight[1] == 0)  # pad row, as HF


def test_tied_tables_end_with_dense_gradients_when_lookups_are_sparse():
    fast = build_model(tiny_config(True), "fast")
    assert fast.sparse_lookup_grads(make_batch()["input_ids"], 1, 1) == (True, True)  # on CPU
    fast(**make_batch()).loss.backward()
    for table in (fast.luke.embeddings.word_embeddings,
                  fast.luke.entity_embeddings.entity_embeddings):
        assert table.weight.grad.layout == torch.strided


def test_state_dict_with_untied_decoder_is_refused_by_name():
    state = LukeForMaskedLM(tiny_config(False)).state_dict()  # transformers 5 leaves it untied
    with pytest.raises(ValueError, match="lm_head.decoder.weight"):
        build_model(tiny_config(False), "fast").load_state_dict(state)


def test_dropout_changes_values_not_shapes():
    hf, fast = twin_models(tiny_config(True, dropout=0.1))
    batch = make_batch()
    want, got = hf(**batch), fast(**batch)
    assert got.logits.shape == want.logits[batch["labels"] != -100].shape
    assert got.entity_logits.shape == want.entity_logits[batch["entity_labels"] != -100].shape
    fast.eval()
    assert not torch.allclose(fast(**batch).loss, got.loss)
    assert torch.isfinite(got.loss)


def test_batch_without_labelled_entities_gives_zero_entity_loss_with_a_gradient():
    fast = build_model(tiny_config(True), "fast")
    batch = make_batch()
    batch["entity_labels"] = torch.full_like(batch["entity_labels"], -100)
    out = fast(**batch)
    assert out.mep_loss.item() == 0.0 and out.entity_logits.shape == (0, 60)
    out.loss.backward()
    torch.testing.assert_close(out.loss, out.mlm_loss)
    assert fast.entity_predictions.bias.grad is not None


def assert_same_loss_and_gradients(reference, model, batch) -> None:
    """`model` gives `reference`'s loss on `batch`, and the same gradient for every parameter."""
    want, got = reference(**batch), model(**batch)
    torch.testing.assert_close(got.loss, want.loss, atol=ATOL, rtol=0)
    want.loss.backward()
    got.loss.backward()
    assert_same_gradients(reference, model)


def test_activation_checkpointing_gives_the_same_gradients():
    config = tiny_config(True)
    _, plain = twin_models(config)
    _, checkpointed = twin_models(config)
    checkpointed.set_activation_checkpointing(True)
    assert_same_loss_and_gradients(plain, checkpointed, make_batch())


def test_transformers_model_with_activation_checkpointing_gives_the_same_gradients():
    config = tiny_config(True)
    torch.manual_seed(0)
    plain = build_model(config, "hf")
    checkpointed = build_model(config, "hf", activation_checkpointing=True)
    checkpointed.load_state_dict(plain.state_dict())
    assert_same_loss_and_gradients(plain, checkpointed, make_batch())


@pytest.mark.slow
def test_compiled_model_gives_the_same_loss_and_gradients_on_cpu():
    config = tiny_config(True)
    hf, fast = twin_models(config)
    compiled = build_model(config, "fast", compile=True)
    compiled.load_state_dict(fast.state_dict())
    assert_same_loss_and_gradients(hf, compiled, make_batch())


def test_unknown_implementation_is_refused():
    with pytest.raises(ValueError, match="'jax'"):
        build_model(tiny_config(False), "jax")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("entity_aware", [False, True], ids=["plain", "entity-aware"])
def test_bf16_fused_attention_on_gpu_stays_close_to_fp32_transformers(entity_aware):
    hf, fast = twin_models(tiny_config(entity_aware))
    hf, fast = hf.cuda(), fast.cuda()
    batch = {k: v.cuda() for k, v in make_batch().items()}
    want, got = hf(**batch), fast(**batch)  # fast runs under bf16 autocast on CUDA
    assert got.loss.dtype == torch.float32
    torch.testing.assert_close(got.loss, want.loss, atol=5e-2, rtol=1e-2)
    got.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in fast.parameters() if p.grad is not None)


def test_bench_batch_has_realistic_masking_and_mentions_inside_the_words():
    import numpy as np
    from pretrain.bench import SIZES, synthetic_batch
    shape = SIZES["small"]
    batch = synthetic_batch(np.random.default_rng(0), shape)
    assert batch["input_ids"].shape == (4, 512) and batch["entity_ids"].shape == (4, 128)
    word_rate = (batch["labels"] != -100).float().mean().item()
    assert 0.12 < word_rate < 0.18
    real = batch["entity_attention_mask"].bool()
    entity_rate = (batch["entity_labels"] != -100).sum() / real.sum()
    assert 0.12 < entity_rate.item() < 0.18
    positions = batch["entity_position_ids"]
    assert positions.max() < 512 and ((positions != -1).any(-1) == real).all()


def test_bench_flop_count_matches_the_reference_figure_for_luke_base():
    import numpy as np
    from pretrain.bench import SIZES, model_flops_per_step, synthetic_batch
    shape = SIZES["base"]
    batch = synthetic_batch(np.random.default_rng(0), shape)
    per_token = model_flops_per_step(shape, batch, False) / (shape.batch * 640)
    assert 0.55e9 < per_token < 0.8e9  # REFERENCE section 6: "about 0.7 GFLOP per token"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_bench_without_a_gpu_says_so_in_one_line(capsys):
    from pretrain.bench import main
    assert main(["--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no CUDA GPU" in err
