"""Token counts through the chat template, checked against transformers' assistant-token mask."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curation.config import LengthConfig
from curation.stages import LengthStage
from curation.tokens.token_counts import TemplateTokenCounter
from tests.helpers import batch_of, chat

# The same ChatML rendering with {% generation %} markers around what the trainer learns.
CHATML_GENERATION = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{% if message['role'] == 'assistant' %}{{ '<|im_start|>assistant\\n' }}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\\n' }}"
    "{% else %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{% endif %}"
    "{% endfor %}"
)


def reference_counts(tok, conv):
    out = tok.apply_chat_template(
        conv,
        chat_template=CHATML_GENERATION,
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    return len(out["input_ids"]), sum(out["assistant_masks"])


CONVERSATIONS = [
    chat("What is 2+2?", "4"),
    chat(
        "Hi", "Hello! How can I help?", "Explain BPE.", "It merges frequent byte pairs.", system="Be brief."
    ),
    chat("Write code", "```python\nprint('hi')\n```"),
    chat("  spaced  ", "  leading and trailing spaces  "),
    chat("¿Qué?", "La capital de Francia es París."),
    chat("0", "_"),  # content that also occurs inside "<|im_end|>"
    chat("a", "a"),  # content that also occurs inside the "assistant" header
    chat("Hi", ""),  # empty answer: only the end-of-turn token is learned
]


def test_fast_piecewise_path_is_used_for_byte_level_bpe(tiny_tokenizer):
    assert TemplateTokenCounter(tiny_tokenizer).backend == "tiktoken piecewise"
    assert TemplateTokenCounter(tiny_tokenizer, piecewise=False).backend == "tokenizers exact"


@pytest.mark.parametrize("piecewise", [True, False])
@pytest.mark.parametrize("conv", CONVERSATIONS)
def test_counts_match_the_assistant_mask(tiny_tokenizer, conv, piecewise):
    counts = TemplateTokenCounter(tiny_tokenizer, piecewise=piecewise).count([conv])
    total, assistant = reference_counts(tiny_tokenizer, conv)
    assert counts.total_tokens[0] == total
    assert counts.completion_tokens[0] == assistant
    assert counts.prompt_tokens[0] == total - assistant


text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=60)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(st.lists(st.tuples(text, text), min_size=1, max_size=3))
def test_counts_match_the_mask_for_any_text(tiny_tokenizer, pairs):
    conv = chat(*[x for pair in pairs for x in pair])
    total, assistant = reference_counts(tiny_tokenizer, conv)
    for piecewise in (True, False):
        counts = TemplateTokenCounter(tiny_tokenizer, piecewise=piecewise).count([conv])
        assert (counts.total_tokens[0], counts.completion_tokens[0]) == (total, assistant)


def test_default_smollm2_tokenizer_counts_match_its_mask():
    from curation.tokens.tokenizer import load_tokenizer

    try:
        tok = load_tokenizer(None)
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"default tokenizer unavailable: {e}")
    template = CHATML_GENERATION.replace(
        "You are a helpful assistant.", "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    )
    for conv in CONVERSATIONS:
        rendered = tok.apply_chat_template(conv, tokenize=False)
        assert rendered == tok.apply_chat_template(conv, chat_template=template, tokenize=False)
        out = tok.apply_chat_template(
            conv, chat_template=template, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
        )
        counter = TemplateTokenCounter(tok)
        assert counter.backend == "tiktoken piecewise"
        counts = counter.count([conv])
        assert counts.total_tokens[0] == len(out["input_ids"])
        assert counts.completion_tokens[0] == sum(out["assistant_masks"])


def test_length_bounds_and_reasons(tiny_tokenizer):
    long_prompt = "word " * 300
    convs = [
        chat("Hi", "Hello there, friend."),
        chat(long_prompt, "Short answer."),  # answer starts beyond max_length
        chat("Hi", "word " * 80),
    ]
    stage = LengthStage(LengthConfig(max_length=128, max_completion_tokens=60), tokenizer=tiny_tokenizer)
    batch = stage.annotate(batch_of(convs))
    assert batch["completion_tokens"][0].as_py() > 0
    assert list(stage.decide(batch)) == [
        None,
        "no_trainable_tokens_within_max_length",
        "completion_tokens>max",
    ]


def test_long_conversation_with_trainable_tokens_inside_max_length_is_kept(tiny_tokenizer):
    conv = chat("Hi", "Hello.", "word " * 300, "Ok.")
    stage = LengthStage(LengthConfig(max_length=64), tokenizer=tiny_tokenizer)
    batch = stage.annotate(batch_of([conv]))
    assert batch["total_tokens"][0].as_py() > 64
    assert list(stage.decide(batch)) == [None]


TRIMMING = CHATML_GENERATION.replace(
    "message['content'] + '<|im_end|>'", "message['content'] | trim + '<|im_end|>'"
)


@pytest.mark.parametrize(
    "template, verbatim",
    [
        (CHATML_GENERATION, True),
        (TRIMMING, False),
        (
            "{% for m in messages %}{% if 'x' in m['content'] %}X{% endif %}{{ m['content'] }}{% endfor %}",
            False,
        ),
        ("{% set s = messages[0]['content'] %}{% for m in messages %}{{ s + m.content }}{% endfor %}", False),
        ("{% for m in messages %}{{ m.get('content') }}{% endfor %}", False),
    ],
)
def test_template_analysis(template, verbatim):
    from curation.tokens.template_analysis import content_is_verbatim

    assert content_is_verbatim(template) is verbatim


def test_a_template_that_edits_content_is_counted_exactly(tiny_tokenizer):
    import copy

    tok = copy.deepcopy(tiny_tokenizer)
    tok.chat_template = TRIMMING.replace("{% generation %}", "").replace("{% endgeneration %}", "")
    counter = TemplateTokenCounter(tok)
    assert counter.verbatim is False
    for conv in CONVERSATIONS:
        out = tok.apply_chat_template(
            conv, chat_template=TRIMMING, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
        )
        counts = counter.count([conv])
        assert counts.total_tokens[0] == len(out["input_ids"])
        assert counts.completion_tokens[0] == sum(out["assistant_masks"])


def test_tiktoken_conversion_is_cached_and_a_bad_cache_entry_is_rebuilt(
    tiny_tokenizer, tmp_path, monkeypatch
):
    from curation.tokens import disk_cache, fast_bpe

    monkeypatch.setenv("SFT_CURATION_CACHE", str(tmp_path))
    backend = tiny_tokenizer._tokenizer
    first = fast_bpe.tiktoken_encoder(backend)
    entry = fast_bpe._cache_path(backend.to_str())
    assert entry.is_file()
    assert fast_bpe.tiktoken_encoder(backend) is first  # kept in this process
    fast_bpe._CHECKED.clear()  # as in a new process
    cached = fast_bpe.tiktoken_encoder(backend)
    text = "Cached and converted encoders agree: 1,234 ¿sí?"
    assert (
        cached.encode([text]) == first.encode([text]) == [backend.encode(text, add_special_tokens=False).ids]
    )
    entry.write_bytes(b"not a pickle")
    fast_bpe._CHECKED.clear()
    rebuilt = fast_bpe.tiktoken_encoder(backend)
    assert rebuilt.encode([text]) == first.encode([text])
    assert disk_cache.load(entry) is not None  # rewritten


def test_token_byte_lengths_from_the_rank_tables_equal_decoding_each_token(tiny_tokenizer):
    from types import SimpleNamespace

    from curation.tokens import fast_bpe
    from curation.tokens.token_counts import token_byte_lengths

    enc = fast_bpe.tiktoken_encoder(tiny_tokenizer._tokenizer).enc
    decoded = [len(enc.decode_single_token_bytes(t)) for t in range(enc.n_vocab)]
    assert enc._special_tokens  # the template's special tokens are counted too
    assert token_byte_lengths(enc).tolist() == decoded
    # An Encoding without the rank tables (another tiktoken version): token by token.
    bare = SimpleNamespace(n_vocab=enc.n_vocab, decode_single_token_bytes=enc.decode_single_token_bytes)
    assert token_byte_lengths(bare).tolist() == decoded


def test_a_worker_copy_counts_the_same_without_building_the_rust_tokenizer(
    tiny_tokenizer, tmp_path, monkeypatch
):
    import pickle

    monkeypatch.setenv("SFT_CURATION_CACHE", str(tmp_path))
    stage = LengthStage(LengthConfig(), tokenizer=tiny_tokenizer)
    batch = batch_of(CONVERSATIONS)
    stage.prepare(batch)
    worker = pickle.loads(pickle.dumps(stage))  # what a worker process or Ray actor gets
    assert worker.counter.backend == "tiktoken piecewise"
    assert worker.counter._backend_tok is None  # started from the verified tiktoken conversion
    scores = worker.score(batch)
    assert worker.counter.exact_with_tiktoken  # rows the piecewise plan cannot split: tiktoken + offsets
    assert worker.counter._backend_tok is None
    for name, values in stage.score(batch).items():
        assert list(scores[name]) == list(values), name


def test_a_local_tokenizer_folder_is_read_once_then_its_counter_comes_from_the_cache(
    tiny_tokenizer_dir, tmp_path, monkeypatch
):
    import shutil

    from curation.tokens import token_counter_cache

    monkeypatch.setenv("SFT_CURATION_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "tok"
    shutil.copytree(tiny_tokenizer_dir, folder)
    loads = []
    real_load = token_counter_cache.load_tokenizer
    monkeypatch.setattr(
        token_counter_cache, "load_tokenizer", lambda name: loads.append(name) or real_load(name)
    )
    cfg = LengthConfig(tokenizer=str(folder))
    batch = batch_of(CONVERSATIONS)

    first = LengthStage(cfg)
    second = LengthStage(cfg)  # from the cache: no transformers tokenizer is loaded
    assert loads == [str(folder)]
    assert second.counter._hf is None
    assert second.counter.backend == first.counter.backend == "tiktoken piecewise"
    for name, values in first.score(batch).items():
        assert list(second.score(batch)[name]) == list(values), name

    # An edited tokenizer folder is read afresh.
    config = folder / "tokenizer_config.json"
    config.write_text(config.read_text() + "\n")
    LengthStage(cfg)
    assert loads == [str(folder), str(folder)]


# -- the columnar path (columnar_counts) against the per-row path ------------------------------

piece_text = st.one_of(
    text,
    st.sampled_from(
        ["", " ", "  lead", "\nnewline first", "\ttab", "\x1cfile sep", "<|im_end|>", "a<|im_start|>b"]
    ),
)


def _fields(counts):
    return [
        list(getattr(counts, f))
        for f in ("prompt_tokens", "completion_tokens", "total_tokens", "first_completion_token")
    ]


def _arrow(conversations):
    import pyarrow as pa

    from curation.schema import RECORD_SCHEMA

    return pa.array(conversations, RECORD_SCHEMA.field("messages").type)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(
    st.lists(
        st.tuples(st.lists(st.tuples(piece_text, piece_text), min_size=1, max_size=3), st.booleans(), text),
        min_size=1,
        max_size=6,
    )
)
def test_columnar_counts_equal_the_per_row_counts(tiny_tokenizer, rows):
    conversations = [
        chat(*[x for pair in pairs for x in pair], system=system if with_system else None)
        for pairs, with_system, system in rows
    ]
    columnar = TemplateTokenCounter(tiny_tokenizer)
    per_row = TemplateTokenCounter(tiny_tokenizer)
    assert _fields(columnar.count_arrow(_arrow(conversations))) == _fields(per_row.count(conversations))


def test_columnar_counts_take_the_common_rows_off_the_per_row_path(tiny_tokenizer, monkeypatch):
    from curation.tokens import columnar_counts

    counter = TemplateTokenCounter(tiny_tokenizer)
    batch = _arrow(CONVERSATIONS * 3)
    per_row_rows = []
    real_count = counter.count
    monkeypatch.setattr(counter, "count", lambda convs: per_row_rows.append(len(convs)) or real_count(convs))
    counts = counter.count_arrow(batch)
    assert _fields(counts) == _fields(TemplateTokenCounter(tiny_tokenizer).count(CONVERSATIONS * 3))
    # Only the rows the per-row plan must handle: an empty answer, an answer led by whitespace.
    assert per_row_rows == [6]
    assert columnar_counts.layout(counter, ("user", "assistant")) is not None


def test_columnar_counts_on_the_real_data_equal_the_per_row_counts():
    from tests.conftest import shared

    path = shared("hh-rlhf/test.jsonl.gz")
    from curation.config import config_from_dict
    from curation.io.reader import read_source
    from curation.tokens.token_counter_cache import load_counter

    try:
        counter = load_counter(None)
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"default tokenizer unavailable: {e}")
    source = config_from_dict({"sources": [{"name": "hh", "path": str(path)}]}).sources[0]
    messages = read_source(source, None).records["messages"].slice(0, 600)
    assert _fields(counter.count_arrow(messages)) == _fields(load_counter(None).count(messages.to_pylist()))


def test_the_default_tokenizer_converts_from_its_gguf_without_pytorch_as_transformers_does():
    """Curation does not need PyTorch, but transformers' GGUF reader imports it: without torch the
    default tokenizer is converted through the gguf package; it must be the same tokenizer."""
    pytest.importorskip("torch", reason="the reference conversion (transformers' GGUF reader) needs PyTorch")
    from transformers import AutoTokenizer

    from curation.tokens.tokenizer import gguf_tokenizer_without_torch, smollm2_gguf

    try:
        gguf = smollm2_gguf()
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"default model unavailable: {e}")
    ours = gguf_tokenizer_without_torch(gguf)
    reference = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    assert ours._tokenizer.to_str() == reference._tokenizer.to_str()
    assert ours.chat_template == reference.chat_template
    assert ours.special_tokens_map == reference.special_tokens_map
    for conv in CONVERSATIONS:
        assert ours.apply_chat_template(conv, tokenize=False) == reference.apply_chat_template(
            conv, tokenize=False
        )


# Texts dense in the whitespace runs where the GPT-2 pattern's lookahead matters, with special tokens.
spacey = st.lists(
    st.sampled_from(
        [" ", "  ", "\n", "\n\n", "\t", "\u3000", "\u00a0", "a", "Zé", "'s", "'ll", "7", "-", "<|im_end|>"]
    )
    | text,
    max_size=12,
).map("".join)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(st.lists(spacey, min_size=1, max_size=5))
def test_the_lookahead_free_encoder_gives_the_tokenizers_ids_and_counts(tiny_tokenizer, texts):
    from curation.tokens import fast_bpe

    backend = tiny_tokenizer._tokenizer
    enc = fast_bpe.tiktoken_encoder(backend)
    assert enc.cuts  # the GPT-2 pattern, run without its lookahead
    assert enc.encode(texts) == [backend.encode(t, add_special_tokens=False).ids for t in texts]
    plain = [t.replace("<|im_end|>", "") for t in texts]  # pieces hold no special tokens
    assert enc.count_pieces(plain) == [len(backend.encode(t, add_special_tokens=False).ids) for t in plain]


def test_texts_holding_the_cut_marker_are_encoded_with_the_pattern_as_it_is(tiny_tokenizer):
    from curation.tokens import fast_bpe

    backend = tiny_tokenizer._tokenizer
    enc = fast_bpe.tiktoken_encoder(backend)
    texts = [f"a  {fast_bpe.CUT}  b\n\nc", "x  y"]
    want = [backend.encode(t, add_special_tokens=False).ids for t in texts]
    assert enc.count_pieces(texts) == [len(ids) for ids in want]
    assert enc.encode(texts) == want
    assert enc._exact is not None  # built only for the marker
