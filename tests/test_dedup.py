"""Exact and near-duplicate stages: keys, survivors, clustering, real data."""

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.config import ExactDedupConfig, NearDedupConfig, SourceConfig
from curation.dedup.lsh import candidate_pairs_from_keys, optimal_bands
from curation.dedup.stages import ExactDedupStage, NearDedupStage
from curation.io.reader import read_source
from tests.conftest import shared
from tests.helpers import batch_of, chat

PARA = (
    "Photosynthesis is the process plants use to turn light into chemical energy. They take in carbon dioxide "
    "and water and, using sunlight, produce glucose and release oxygen that animals breathe. It happens in the "
    "chloroplasts, where the green pigment chlorophyll absorbs mostly red and blue light and reflects green, "
    "which is why leaves look green to us. The glucose feeds the plant and is stored as starch for the night."
)


def decided(stage, batch) -> list:
    out = stage.decide(batch)
    return out.to_pylist() if hasattr(out, "to_pylist") else list(out)


def run(stage, convs, completion_tokens=None):
    batch = batch_of(convs)
    if completion_tokens is not None:
        batch = batch.append_column("completion_tokens", pa.array(completion_tokens, pa.int64()))
    batch = stage.annotate(batch)
    return batch, decided(stage, batch)


def test_exact_key_normalizes_whitespace_and_unicode_and_keeps_case():
    convs = [chat("What is ﬁre?", "Hot."), chat("What   is  fire?", "Hot."), chat("What is water?", "Wet.")]
    batch, reasons = run(ExactDedupStage(), convs)
    assert set(reasons[:2]) == {"exact_duplicate:conversation", None} and reasons[2] is None
    survivor = batch["id"][reasons.index(None)].as_py()
    assert batch["dup_cluster"].to_pylist() == [survivor] * 2 + [None]


def test_answers_to_a_capitalisation_task_that_differ_in_case_are_both_kept():
    convs = [chat("Capitalize: paris", "Paris"), chat("Capitalize: paris", "PARIS")]
    assert run(ExactDedupStage(), convs)[1] == [None, None]
    lowered = ExactDedupStage(ExactDedupConfig(lowercase=True))
    assert run(lowered, convs)[1] == [None, "exact_duplicate:conversation"]


def test_two_answers_to_one_prompt_are_kept_unless_prompt_key():
    convs = [chat("Name a fruit.", "An apple."), chat("Name a fruit.", "A banana.")]
    assert run(ExactDedupStage(), convs)[1] == [None, None]
    assert run(ExactDedupStage(ExactDedupConfig(key="prompt")), convs)[1] == [None, "exact_duplicate:prompt"]
    same_answer = [chat("Name a fruit.", "An apple."), chat("Give me a fruit.", "An apple.")]
    assert run(ExactDedupStage(ExactDedupConfig(key="response")), same_answer)[1] == [
        None,
        "exact_duplicate:response",
    ]


def test_key_cache_gives_the_same_keys_as_computing_them():
    from curation.dedup.keys import KeyCache, key_texts

    convs = [chat("What is ﬁre?", "Hot."), chat("Name a fruit.", "An apple."), chat("what is FIRE?", "hot.")]
    batch = batch_of(convs)
    cache = KeyCache()
    assert cache.get(batch, "conversation").to_list() == key_texts(batch, "conversation").to_list()
    subset = batch.take([2, 0])  # what a later stage sees: some rows, maybe reordered
    assert cache.get(subset, "conversation").to_list() == key_texts(subset, "conversation").to_list()
    assert cache.get(subset, "prompt").to_list() == key_texts(subset, "prompt").to_list()
    new = batch_of([chat("Something new", "Yes.")])
    assert cache.get(new, "conversation").to_list() == key_texts(new, "conversation").to_list()


def test_survivor_has_most_assistant_tokens_then_smallest_id():
    convs = [chat("Q?", "Short."), chat("q?", "short."), chat("Q?  ", "SHORT.")]
    batch, reasons = run(
        ExactDedupStage(ExactDedupConfig(lowercase=True)), convs, completion_tokens=[3, 9, 9]
    )
    ids = batch["id"].to_pylist()
    winner = min(ids[1], ids[2])
    assert reasons[ids.index(winner)] is None
    assert sum(r is not None for r in reasons) == 2
    assert set(batch["duplicate_of"].to_pylist()) == {winner, None}
    again, reasons_again = run(
        ExactDedupStage(ExactDedupConfig(lowercase=True)), convs, completion_tokens=[3, 9, 9]
    )
    assert reasons_again == reasons


def test_near_duplicates_cluster_and_unrelated_rows_do_not():
    edited = PARA.replace("chemical", "stored")  # one word changed
    other = (
        "Inflation is the rate at which prices rise, so each unit of money buys less than before over time."
    )
    batch, reasons = run(
        NearDedupStage(),
        [
            chat("Explain photosynthesis.", PARA),
            chat("Explain photosynthesis.", edited),
            chat("What is inflation?", other),
        ],
    )
    assert reasons[2] is None
    assert sorted(r is None for r in reasons[:2]) == [False, True]
    assert batch["dup_cluster"][2].as_py() is None


def test_a_shared_system_prompt_does_not_create_a_cluster():
    system = "You are a helpful assistant. " * 40  # long boilerplate shared by every row
    convs = [
        chat("What is the capital of France?", "Paris is the capital of France.", system=system),
        chat("How many legs does a spider have?", "A spider has eight legs.", system=system),
        chat("Who wrote Hamlet?", "William Shakespeare wrote Hamlet.", system=system),
    ]
    batch, reasons = run(NearDedupStage(), convs)
    assert reasons == [None, None, None]
    assert batch["dup_cluster"].to_pylist() == [None, None, None]


def test_bands_and_rows_follow_the_threshold():
    assert optimal_bands(0.8, 128) == (9, 13)  # what datasketch's MinHashLSH picks
    b, r = optimal_bands(0.5, 128)
    assert b * r <= 128 and r < 13


@pytest.mark.shared_data
def test_fastchat_prompt_key_vs_conversation_key():
    """FastChat's dummy conversations reuse ~52 first messages with different continuations."""
    table = read_source(SourceConfig(name="fc", path=str(shared("FastChat/dummy_conversation.json")))).records
    _, by_conv = run_table(ExactDedupStage(), table)
    _, by_prompt = run_table(ExactDedupStage(ExactDedupConfig(key="prompt")), table)
    removed_conv = sum(r is not None for r in by_conv)
    removed_prompt = sum(r is not None for r in by_prompt)
    first_msgs = {m[0]["content"].lower().strip() for m in table["messages"].to_pylist()}
    assert removed_prompt == 500 - len(first_msgs)  # one survivor per distinct first message
    assert removed_conv < removed_prompt  # whole conversations repeat far less often than prompts
    _, near = run_table(NearDedupStage(NearDedupConfig(threshold=0.8)), table)
    assert sum(r is not None for r in near) >= removed_conv


def run_table(stage, table):
    batch = stage.annotate(table)
    return batch, decided(stage, batch)


def test_signatures_estimate_jaccard_like_datasketch():
    from datasketch import MinHash

    from curation.dedup.minhash import oph_signatures, signatures

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(300)]
    a = " ".join(rng.choice(words, 120))
    b_words = a.split()
    b_words[40:52] = rng.choice(words, 12)
    b = " ".join(b_words)

    def shingles(t):
        w = t.split()
        return {" ".join(w[i : i + 5]) for i in range(len(w) - 4)}

    true = len(shingles(a) & shingles(b)) / len(shingles(a) | shingles(b))
    import polars as pl

    sig = signatures(pl.Series([a, b]), num_perm=256)
    ours = (sig[0] == sig[1]).mean()
    oph = oph_signatures(pl.Series([a, b]), num_perm=256)
    assert abs((oph[0] == oph[1]).mean() - true) < 0.1
    m1, m2 = MinHash(256), MinHash(256)
    for s in shingles(a):
        m1.update(s.encode())
    for s in shingles(b):
        m2.update(s.encode())
    assert abs(ours - true) < 0.08
    assert abs(m1.jaccard(m2) - true) < 0.08


@pytest.mark.shared_data
def test_decontamination_removes_a_row_embedding_a_humaneval_prompt():
    import gzip
    import json

    from curation.config import DecontaminationConfig
    from curation.dedup.decontaminate import DecontaminationStage

    path = shared("human-eval/HumanEval.jsonl.gz")
    first = json.loads(gzip.open(path, "rt").readline())
    cfg = DecontaminationConfig(
        eval_sets=[
            SourceConfig(
                name="humaneval",
                path=str(path),
                columns={"prompt": "prompt", "response": "canonical_solution"},
            )
        ]
    )
    stage = DecontaminationStage(cfg)
    convs = [
        chat("Please solve this:\n" + first["prompt"], "Here is my solution."),  # embeds the eval prompt
        chat(
            "Write a function that checks if in given list of numbers two are close.", "def f(x): return x"
        ),  # short overlap only
        chat("What is the capital of France?", "Paris."),
    ]
    batch = stage.annotate(batch_of(convs))
    reasons = decided(stage, batch)
    assert (
        reasons[0]
        == f"contaminated:humaneval:{batch_of([[{'role': 'user', 'content': first['prompt']}, {'role': 'assistant', 'content': first['canonical_solution']}]])['id'][0].as_py()}"
    )
    assert reasons[1:] == [None, None]


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 40).flatmap(
        lambda n: st.tuples(
            st.just(n), st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=60)
        )
    )
)
def test_union_find_labels_each_component_by_its_smallest_member(case):
    from curation.dedup.lsh import union_find

    n, pairs = case
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            x = parent[x]
        return x

    for x, y in pairs:
        rx, ry = find(x), find(y)
        parent[max(rx, ry)] = min(rx, ry)
    want = [find(i) for i in range(n)]
    got = union_find(n, np.array(pairs, dtype=np.int64).reshape(-1, 2))
    assert got.tolist() == want


WORDS = st.text(
    alphabet=st.sampled_from(list("abc é東") + [" ", " ", "\t", "\n", "\u00a0", "\u3000"]), max_size=40
)


@settings(max_examples=150, deadline=None)
@given(st.lists(WORDS, min_size=1, max_size=6), st.integers(1, 5))
def test_shingle_hashes_match_a_per_word_reference(texts, n):
    import polars as pl

    from curation.dedup.minhash import shingle_hashes

    mask = (1 << 64) - 1
    want_h, want_doc = [], []
    for d, text in enumerate(texts):
        words = text.split()  # the alphabet has no characters where str.split and Unicode \s differ
        hashes = [int(h) for h in pl.Series(words, dtype=pl.String).hash(seed=11)]
        starts = range(len(words) - n + 1) if len(words) >= n else ([0] if words else [])
        for i in starts:
            g = 0
            for h in hashes[i : i + n]:
                g = ((g * 0x9E3779B97F4A7C15) & mask) ^ h
            want_h.append(g & 0xFFFFFFFF)
            want_doc.append(d)
    got_h, got_doc = shingle_hashes(pl.Series(texts, dtype=pl.String), ngram=n)
    assert got_h.tolist() == want_h
    assert got_doc.tolist() == want_doc


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 5), min_size=0, max_size=30), min_size=1, max_size=4).filter(
        lambda bands: len({len(b) for b in bands}) == 1
    ),
    st.integers(1, 3),
)
def test_candidate_pairs_link_every_bucket_member_to_its_first_row(bands, threads):
    keys = [np.array(b, dtype=np.uint64) for b in bands]
    expected = sorted(
        {
            (band.index(key), i)
            for band in bands
            for i, key in enumerate(band)
            if band.index(key) != i  # the bucket's first row is its leader
        }
    )
    pairs = candidate_pairs_from_keys(keys, threads=threads)
    assert [tuple(p) for p in pairs.tolist()] == expected
    matrix = np.stack(keys, axis=1) if len(keys[0]) else np.zeros((0, len(keys)), np.uint64)
    assert np.array_equal(candidate_pairs_from_keys(matrix, threads=1), pairs.reshape(-1, 2))


_NFKC_ALPHABET = list("aZ 1\n.") + [
    "é",
    "e\u0301",
    "\u0301",
    "ﬁ",
    "①",
    "Ｆ",
    "™",
    "…",
    "½",
    "’",
    "ᄀ",
    "ᅡ",
    "가",
    "Å",
    "Ω",
    "東",
]


@given(
    st.lists(
        st.one_of(st.none(), st.lists(st.sampled_from(_NFKC_ALPHABET), max_size=12).map("".join)), max_size=12
    )
)
def test_nfkc_normalizes_exactly_the_texts_that_change(texts):
    from curation.dedup.keys import nfkc

    series = pl.Series("t", texts, dtype=pl.String)
    assert nfkc(series).to_list() == series.str.normalize("NFKC").to_list()


def test_a_long_shared_prompt_does_not_make_different_answers_duplicates():
    prompt = PARA + " Are these two questions duplicates: 'How do plants eat?' and 'What do plants eat?'"
    convs = [chat(prompt, "Yes, they are duplicates."), chat(prompt, "They are related but not duplicates.")]
    assert run(NearDedupStage(), convs)[1] == [None, None]
    # Compared on the whole conversation only, the shared prompt outweighs the answers.
    assert run(NearDedupStage(NearDedupConfig(verify_roles=False)), convs)[1].count(None) == 1


def test_one_canned_answer_to_different_prompts_is_not_a_duplicate():
    canned = (
        "I am Vicuna, a language model trained by researchers from Large Model Systems Organization (LMSYS)."
    )
    convs = [chat(f"Are you {name}?", canned) for name in ("curie", "davinci-002", "GPT-2", "Bard")]
    assert run(NearDedupStage(), convs)[1] == [None] * 4


def test_answers_with_the_same_words_but_other_punctuation_and_markdown_are_duplicates():
    plain = chat("Explain photosynthesis.", PARA)
    marked = chat("Explain photosynthesis.", "**" + PARA.replace(". ", "; ").replace(",", "") + "**")
    batch, reasons = run(NearDedupStage(), [plain, marked])
    assert reasons.count("near_duplicate:conversation") == 1


def test_short_answers_that_share_one_shingle_of_three_are_not_merged():
    # Jaccard 1/3 (word 5-grams): rotation densification estimated over 0.74 for such short texts.
    convs = [
        chat("Name the fourth kid.", "The fourth kid is named Mike."),
        chat("Name the fourth kid.", "The fourth kid is named Lily."),
    ]
    assert run(NearDedupStage(), convs)[1] == [None, None]


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=2, max_value=12), st.integers(min_value=0, max_value=11))
def test_oph_estimates_short_texts_without_bias(n_words, n_changed):
    from curation.dedup.minhash import oph_signatures

    words = [f"w{i}" for i in range(n_words + 4)]
    other = [f"x{i}" if i < min(n_changed, n_words) else w for i, w in enumerate(words)]
    a, b = " ".join(words), " ".join(other)
    sa = {" ".join(words[i : i + 5]) for i in range(len(words) - 4)}
    sb = {" ".join(other[i : i + 5]) for i in range(len(other) - 4)}
    true = len(sa & sb) / len(sa | sb)
    sig = oph_signatures(pl.Series([a, b]), num_perm=512)
    assert abs((sig[0] == sig[1]).mean() - true) < 0.2
