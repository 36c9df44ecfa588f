"""Cross-lingual in-context learning (Winata et al. 2021): prompts, MCP, calibration,
metrics, controls, loaders."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from harness_adapters.lm.base import LanguageModel
from harness_adapters.xlingual import corpus, metrics, prompts, scoring
from harness_adapters.xlingual.corpus import Corpus, Item
from harness_adapters.xlingual.datasets import select_queries
from harness_adapters.xlingual.icl import CrossLingualICL

from harness import HarnessError
from harness.context import RunContext

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "bigbench" / "tasks"
LABELS = ["positive", "negative", "neutral"]


class ToyLM(LanguageModel):
    """Scores a continuation with ``fn(context, continuation)``; records every call."""

    def __init__(self, fn: Callable[[str, str], float]) -> None:
        self.fn = fn
        self.calls: list[tuple[str, list[str]]] = []

    def loglikelihood(self, contexts: Sequence[str],
                      continuations: Sequence[Sequence[str]]) -> list[list[float]]:
        out = []
        for ctx, conts in zip(contexts, continuations, strict=True):
            self.calls.append((ctx, list(conts)))
            out.append([self.fn(ctx, c) for c in conts])
        return out

    def generate(self, prompts, **kw):  # type: ignore[no-untyped-def]
        raise NotImplementedError


def toy_corpus(n: int = 12) -> Corpus:
    """English and German 'reviews' naming their label in the text: en-i / de-i."""
    gold = [LABELS[i % 2] for i in range(n)]  # neutral never occurs (as in multiemo)
    langs = {lang: [Item(str(i), f"{lang}-review-{i} it was {g}", g)
                    for i, g in enumerate(gold)] for lang in ("en", "de")}
    return select_queries(Corpus("toy", list(LABELS), langs, "en"), None, 0)


def ctx(seed: int = 0) -> RunContext:
    return RunContext(seed=seed)


def knows_answer(context: str, cont: str) -> float:
    """Direct: the label word written in the query (the last line) is likely."""
    query = context.rsplit("\n", 1)[-1]
    return -0.1 if cont.strip() in query else -3.0


def method(**params) -> CrossLingualICL:  # type: ignore[no-untyped-def]
    return CrossLingualICL(CrossLingualICL.Params(**params))


# -- prompt construction -------------------------------------------------------------
def test_demonstrations_english_query_target_language_no_self_demonstration() -> None:
    c = toy_corpus()
    lm = ToyLM(knows_answer)
    m = method(shots=[3], scorings=["direct"], group_size=4, calibrate=False,
               languages=["de"])
    out = m.run(ctx(), c, lm)
    assert len(lm.calls) == 3 * 4  # 3 groups of 4 queries, one call per query
    for (context, conts), row in zip(lm.calls, out["examples"], strict=True):
        lines = context.split("\n")
        demos, query = lines[:-1], lines[-1]
        assert len(demos) == 3 and all(d.startswith("en-review-") for d in demos)
        assert query == f"de-review-{row['id']} it was {row['gold']} =>"
        assert conts == [" positive", " negative", " neutral"]
        demo_ids = {d.split(" ")[0].removeprefix("en-review-") for d in demos}
        assert row["id"] not in demo_ids  # not its own review, in any language
        group_ids = {r["id"] for r in out["examples"] if r["group"] == row["group"]}
        assert not demo_ids & group_ids
    # one demonstration set per group, shared by its queries
    assert [len(v) for v in out["demonstrations"].values()] == [3, 3, 3]


def test_demonstration_sets_come_from_the_context_and_are_shared_across_languages() -> None:
    c = toy_corpus(24)
    m = method(shots=[3], scorings=["direct"], group_size=6)
    a, b, d = (m.run(ctx(s), c, ToyLM(knows_answer)) for s in (1, 1, 2))
    assert a["demonstrations"] == b["demonstrations"] != d["demonstrations"]
    lm = ToyLM(knows_answer)
    method(shots=[3], scorings=["direct"], group_size=12, calibrate=False).run(ctx(), c, lm)
    langs_by_prefix: dict[str, set[str]] = {}
    for context, _ in lm.calls:
        prefix, query = context.rsplit("\n", 1)
        langs_by_prefix.setdefault(prefix, set()).add(query[:2])
    # two groups, each with one demonstration set that its en and de queries share
    assert list(langs_by_prefix.values()) == [{"en", "de"}, {"en", "de"}]


def test_templates_and_mcp_demonstrations() -> None:
    t = prompts.Templates()
    ctx_, conts = prompts.direct_query(t, "", "gut", ["positive"])
    assert (ctx_, conts) == ("gut =>", [" positive"])
    contexts, pairs = prompts.mcp_queries(t, "P\n", "gut", ["positive", "negative"])
    assert contexts == ["P\ngut => positive =", "P\ngut => negative ="]
    assert pairs == [[" true", " false"]] * 2
    lines = prompts.mcp_lines(t, [Item("1", "bad", "negative")], LABELS, 1,
                              np.random.default_rng(0))
    assert sorted(lines)[0] == "bad => negative = true"
    assert len(lines) == 2 and lines[1 - lines.index("bad => negative = true")] in (
        "bad => positive = false", "bad => neutral = false")
    with pytest.raises(HarnessError, match="no {label} slot"):
        prompts.Templates(direct="{text} ->").check()


# -- MCP and calibration by hand -------------------------------------------------------
P_TRUE = {"positive": 0.6, "negative": 0.5, "neutral": 0.2}
P_FALSE = {"positive": 0.35, "negative": 0.1, "neutral": 0.7}
CF_TRUE = {"positive": 0.9, "negative": 0.4, "neutral": 0.1}
CF_FALSE = {"positive": 0.05, "negative": 0.5, "neutral": 0.8}


def mcp_lm(context: str, cont: str) -> float:
    query = context.rsplit("\n", 1)[-1]
    label = query.split("=>")[-1].strip(" =")
    cf = query.startswith("N/A")
    table = (CF_TRUE if cont == " true" else CF_FALSE) if cf else \
        (P_TRUE if cont == " true" else P_FALSE)
    return math.log(table[label])


def test_mcp_by_hand_on_a_toy_model() -> None:
    c = toy_corpus(2)
    out = method(shots=[0], scorings=["mcp"], languages=["en"]).run(ctx(), c, ToyLM(mcp_lm))
    pred = out["examples"][0]["pred"]
    # P(true): positive 0.6 > negative 0.5 > neutral 0.2
    assert pred["mcp_true"] == "positive"
    # P(true) - P(false): 0.25, 0.4, -0.5 -> negative
    assert pred["mcp_diff"] == "negative"
    # P(true)/P_cf(true): 0.667, 1.25, 2.0 -> neutral
    assert pred["mcp_true_cal"] == "neutral"
    # binary calibrated: q_t ∝ (0.6/0.9, 0.35/0.05) etc -> q_t - q_f
    def q(lab: str) -> float:
        t, f = P_TRUE[lab] / CF_TRUE[lab], P_FALSE[lab] / CF_FALSE[lab]
        return (t - f) / (t + f)
    expected = max(LABELS, key=q)
    assert expected == "negative" and pred["mcp_diff_cal"] == expected


def test_direct_calibration_by_hand() -> None:
    lp = np.log([[0.6, 0.3, 0.1]])
    cf = np.log([0.7, 0.2, 0.1])
    s = scoring.direct_scores(lp, cf)
    assert scoring.predict(s["direct"])[0] == 0
    # p / p_cf = 0.857, 1.5, 1.0 -> label 1
    assert scoring.predict(s["direct_cal"])[0] == 1
    np.testing.assert_allclose(np.exp(s["direct_cal"][0]), [0.6 / 0.7, 1.5, 1.0])


def test_calibration_removes_a_constant_bias() -> None:
    """A model that adds +2 to 'positive' whatever the input: uncalibrated it always says
    positive; calibrated by the N/A input it recovers the answer."""
    def biased(context: str, cont: str) -> float:
        return knows_answer(context, cont) + (5.0 if cont == " positive" else 0.0)
    c = toy_corpus()
    out = method(shots=[0], scorings=["direct"]).run(ctx(), c, ToyLM(biased))
    t = metrics.table(out["examples"], out["labels"], ["direct", "direct_cal"],
                      np.random.default_rng(0), 200, 0.95)
    assert t["de.k0.direct.pred.positive"] == 12 and t["de.k0.direct.balanced_accuracy"] == 0.5
    assert t["de.k0.direct_cal.balanced_accuracy"] == 1.0


# -- metrics ---------------------------------------------------------------------------
def test_balanced_accuracy_of_a_constant_predictor_is_one_over_labels_present() -> None:
    gold = np.array([0, 0, 0, 1, 2, 2])
    assert metrics.balanced_accuracy(gold, np.zeros(6, int), 4) == pytest.approx(1 / 3)
    assert metrics.balanced_accuracy(gold, gold, 4) == 1.0
    low, high = metrics.bootstrap_bacc(gold, gold, 4, np.random.default_rng(0), 200, 0.95)
    assert low == high == 1.0


# -- controls --------------------------------------------------------------------------
def summary_of(out: dict) -> dict[str, float]:  # type: ignore[type-arg]
    t = metrics.table(out["examples"], out["labels"], ["direct_cal"],
                      np.random.default_rng(0), 300, 0.95)
    return metrics.summary(t, out["languages"], "en", "direct_cal", 3, 0)


def test_the_method_passes_and_its_controls_fail() -> None:
    c = toy_corpus(24)
    good = summary_of(method(shots=[0, 3], scorings=["direct"], group_size=8)
                      .run(ctx(), c, ToyLM(knows_answer)))
    assert good["source_bacc_ci_low"] == 1.0 and good["languages_above_chance"] == 1
    blind = summary_of(method(shots=[0, 3], scorings=["direct"], group_size=8, query="content_free")
                       .run(ctx(), c, ToyLM(knows_answer)))
    assert blind["source_balanced_accuracy"] == pytest.approx(0.5)  # constant: 1/2 labels
    assert blind["languages_above_chance"] == 0 and blind["source_bacc_ci_low"] <= 0.5
    permuted = summary_of(method(shots=[0, 3], scorings=["direct"], group_size=8,
                                 permute_labels=True).run(ctx(), c, ToyLM(knows_answer)))
    assert permuted["source_balanced_accuracy"] == 0.0
    assert permuted["languages_above_chance"] == 0


# -- loaders ---------------------------------------------------------------------------
def test_truncation_budgets() -> None:
    assert corpus.truncate("a  b\nc d", "de", 3, 2) == "a b c"
    assert corpus.truncate("日本語の文章です", "ja", 3, 4) == "日本語の"
    assert corpus.truncate("x y", "en", None, None) == "x y"


def test_folder_loader(tmp_path: Path) -> None:
    for lang, words in (("en", ("good", "bad")), ("de", ("gut", "schlecht"))):
        (tmp_path / lang).mkdir()
        (tmp_path / lang / "pos.txt").write_text(f"{words[0]} one\n{words[0]} two\n")
        (tmp_path / lang / "neg.txt").write_text(f"{words[1]} one\n")
    c = corpus.folder(tmp_path, None, "en", 5, 5)
    assert c.labels == ["neg", "pos"] and sorted(c.languages) == ["de", "en"]
    assert [i.id for i in c.languages["de"]] == ["neg:0", "pos:0", "pos:1"]
    (tmp_path / "fr").mkdir()
    (tmp_path / "fr" / "other.txt").write_text("x\n")
    with pytest.raises(HarnessError, match="not in the source language"):
        corpus.folder(tmp_path, None, "en", 5, 5)


def test_chatterbot_loader() -> None:
    pytest.importorskip("chatterbot_corpus")
    c = corpus.chatterbot(["en", "it", "ja"], "en", ["food", "movies"], 20, 40)
    assert c.labels == ["food", "movies"]
    assert {i.label for i in c.languages["ja"]} == {"food", "movies"}
    assert all(len(i.text) <= 40 for i in c.languages["ja"])
    with pytest.raises(HarnessError, match="no german/money.yml"):
        corpus.chatterbot(["de"], "en", ["money"], 20, 40)


@pytest.mark.realdata
def test_multiemo_is_parallel_and_truncated() -> None:
    if not SHARED.is_dir():
        pytest.skip("../shared/bigbench/tasks is absent")
    c = corpus.multiemo(lambda t: SHARED / t, ["de", "ja"], "en", 10, 20)
    assert c.labels == ["ambivalent", "positive", "negative", "neutral"]
    assert len(c.languages["de"]) == len(c.languages["en"]) == 504
    assert [i.label for i in c.languages["ja"]] == [i.label for i in c.languages["en"]]
    assert all(len(i.text.split()) <= 10 for i in c.languages["de"])
    assert all(len(i.text) <= 20 for i in c.languages["ja"])
    assert c.instruction.startswith("Determine whether")


@pytest.mark.slow
@pytest.mark.realdata
def test_spec_runs_small_and_its_blind_control_fails(tmp_path: Path) -> None:
    """specs/xlingual-icl.yaml through the CLI at a reduced size (en, de, ja; 8 queries):
    the numbers are recorded per language, and content-free queries give a constant
    prediction (balanced accuracy exactly chance, so no lower bound is above it)."""
    from conftest import SPECS, load_summary, run_harness
    if not SHARED.is_dir():
        pytest.skip("../shared/bigbench/tasks is absent")
    small = ["--seeds", "0", "--set", "datasets.multiemo.languages=[en, de, ja]",
             "--set", "datasets.multiemo.max_queries=8", "--set", "methods.icl.group_size=8",
             "--set", "methods.icl.scorings=[direct]"]
    env = {"HARNESS_BIGBENCH_TASKS": str(SHARED)}
    out = tmp_path / "blind"
    res = run_harness("run", str(SPECS / "xlingual-icl.yaml"), "--out", str(out), *small,
                      "--set", "methods.icl.query=content_free", env=env)
    assert res.returncode == 0, res  # its claims fail, as their xfail marks expect
    m = load_summary(out)["cells"][0]["metrics"]
    for lang in ("en", "de", "ja"):
        key = f"{lang}.k3.direct_cal"
        assert m[f"{key}.balanced_accuracy"] == m[f"{key}.chance"] >= m[f"{key}.bacc_ci_low"]
        assert max(m[f"{lang}.k3.direct_cal.pred.{x}"] for x in
                   ("ambivalent", "positive", "negative", "neutral")) == 8
    assert m["languages_above_chance"] == 0 and m["k_gain"] == 0
    claims = load_summary(out)["claims"]
    assert [c["status"] for c in claims] == ["XFAIL"] * 3
    assert not any(row["passed"] for c in claims for row in c["groups"])


def test_report_table_and_plot() -> None:
    from harness_adapters.xlingual import report
    table = [{"group": "g", "language": lang, "k": k, "rule": "direct_cal", "accuracy": 0.4,
              "balanced_accuracy": 0.45, "bacc_ci_low": 0.3, "bacc_ci_high": 0.6,
              "majority_rate": 0.54, "chance": 1 / 3, "pred.positive": 30.0, "seeds": 3}
             for lang in ("en", "de") for k in (0, 3)]
    html = report.render_table(table)
    assert "[0.30, 0.60]" in html and "positive 30" in html and html.count("<tr>") == 5
    assert report.plot(table, "direct_cal").startswith('<img src="data:image/png;base64,')
    assert report.section({"adapters": []}, "/nonexistent") == []


def test_a_small_query_subset_keeps_every_label_in_proportion() -> None:
    """Stratified: 16 of 100 items with 60/30/10 labels -> each label within one of its
    share (9.6 / 4.8 / 1.6; largest remainders) and at least once; a plain draw
    (``stratify=False``) misses the rare label for some seeds."""
    gold = ["positive"] * 60 + ["ambivalent"] * 30 + ["negative"] * 10
    langs = {lang: [Item(str(i), f"{lang}-{i}", g) for i, g in enumerate(gold)]
             for lang in ("en", "de")}
    for seed in range(20):
        c = select_queries(Corpus("toy", list(LABELS), dict(langs), "en"), 16, seed, True)
        got = [gold[int(i)] for i in c.info["query_ids"]]
        assert len(got) == len(set(c.info["query_ids"])) == 16
        for label, share in (("positive", 9.6), ("ambivalent", 4.8), ("negative", 1.6)):
            assert 1 <= got.count(label) and abs(got.count(label) - share) < 1, (seed, label)
    tiny = select_queries(Corpus("toy", list(LABELS), dict(langs), "en"), 2, 0, True)
    assert len(tiny.info["query_ids"]) == 2  # fewer queries than labels: the largest shares
    plain = [select_queries(Corpus("toy", list(LABELS), dict(langs), "en"), 16, s, False)
             .info["query_ids"] for s in range(20)]
    assert any(all(gold[int(i)] != "negative" for i in ids) for ids in plain)


def test_seeds_walk_in_three_orders_with_the_same_results(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Seeds side by side share their k=0 calls through the LM memo when the second walks
    the languages backwards and the third makes its k=3 calls first; the order changes no
    prediction and no random-rule draw."""
    c = toy_corpus(12)
    m = method(shots=[0, 3], group_size=4)
    walked = {}
    for seed in (1, 2):
        lm = ToyLM(knows_answer)
        walked[seed] = (m.run(RunContext(seed=7, spec_seed=seed), c, lm), lm.calls)
    backwards_calls = walked[1][1]
    assert backwards_calls[0][0].rsplit("\n", 1)[-1].startswith("de-")  # the last language
    zero_shot = [context.count("=>") == 1 for context, _ in walked[2][1]]  # no demonstration
    assert zero_shot == sorted(zero_shot) and 0 < sum(zero_shot) < len(zero_shot)
    monkeypatch.setattr(CrossLingualICL, "walk", staticmethod(lambda work, ctx: work))
    for seed in (1, 2):
        forwards = m.run(RunContext(seed=7, spec_seed=seed), c, ToyLM(knows_answer))
        assert walked[seed][0]["examples"] == forwards["examples"]


def _made_twice(orders: list[list[tuple[str, int, int]]], cost: dict[int, float]) -> int:
    """Seed-independent (k=0) calls made by more than one of the walkers running side by
    side at one speed (a call whose result another walker finished before it started is
    a memo hit, which costs nothing)."""
    clocks = [0.0] * len(orders)
    position = [0] * len(orders)
    finished: dict[tuple[str, int, int], float] = {}
    made: dict[tuple[str, int, int], int] = {}
    while any(p < len(o) for p, o in zip(position, orders, strict=True)):
        w = min((i for i, o in enumerate(orders) if position[i] < len(o)),
                key=lambda i: clocks[i])
        call = orders[w][position[w]]
        position[w] += 1
        if call[1] == 0 and finished.get(call, float("inf")) <= clocks[w]:
            continue
        clocks[w] += cost[call[1]]
        if call[1] == 0:
            made[call] = made.get(call, 0) + 1
            finished[call] = min(finished.get(call, float("inf")), clocks[w])
    return sum(n - 1 for n in made.values())


def test_three_seeds_side_by_side_make_each_shared_call_once() -> None:
    """The cross-lingual spec runs its three seeds on three workers: with the three walks,
    no k=0 call is made twice (all three walking forwards would make most of them three
    times), for k=3 calls several times dearer than k=0 ones, as on multiemo."""
    langs = [f"l{i}" for i in range(11)]
    work = [(lang, k, g) for lang in langs for k in (0, 3) for g in range(2)]
    orders = [CrossLingualICL.walk(work, RunContext(seed=0, spec_seed=s)) for s in range(3)]
    for ratio in (2.0, 3.0, 4.0):
        assert _made_twice(orders, {0: 1.0, 3: ratio}) == 0, ratio
        assert _made_twice(orders[:2], {0: 1.0, 3: ratio}) == 0, ratio
    assert _made_twice([work, work, work], {0: 1.0, 3: 3.0}) >= len(work) // 2
