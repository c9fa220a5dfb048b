import pytest
from hypothesis import given
from hypothesis import strategies as st

from curation.errors import RowError
from curation.io import formats as F
from curation.schema import check_messages, conversation_id


def test_alpaca_joins_instruction_and_input():
    [conv] = F.alpaca({"instruction": "Rewrite this.", "input": "hey u", "output": "Hello, you."})
    assert conv == [
        {"role": "user", "content": "Rewrite this.\n\nhey u"},
        {"role": "assistant", "content": "Hello, you."},
    ]


def test_dolly_uses_context():
    [conv] = F.dolly({"instruction": "Summarize.", "context": "Long text.", "response": "Short."})
    assert conv[0]["content"] == "Summarize.\n\nLong text." and conv[1]["content"] == "Short."


def test_self_instruct_one_conversation_per_instance():
    row = {
        "instruction": "Add.",
        "instances": [{"input": "1+1", "output": "2"}, {"input": "", "output": "0"}],
    }
    convs = F.self_instruct(row)
    assert [c[0]["content"] for c in convs] == ["Add.\n\n1+1", "Add."]
    assert [c[1]["content"] for c in convs] == ["2", "0"]


def test_sharegpt_maps_roles():
    row = {
        "conversations": [
            {"from": "system", "value": "Be brief."},
            {"from": "human", "value": "Hi"},
            {"from": "gpt", "value": "Hello"},
        ]
    }
    [conv] = F.sharegpt(row)
    assert [m["role"] for m in conv] == ["system", "user", "assistant"]


def test_sharegpt_unknown_role_names_the_field():
    with pytest.raises(RowError) as e:
        F.sharegpt({"conversations": [{"from": "narrator", "value": "x"}]})
    assert e.value.field == "conversations[0].from"


def test_openai_content_parts_and_multi_turn():
    row = {
        "messages": [
            {"role": "system", "content": "S"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": "c"},
            {"role": "user", "content": "d"},
            {"role": "assistant", "content": "e"},
        ]
    }
    [conv] = F.openai_messages(row)
    assert [m["content"] for m in conv] == ["S", "ab", "c", "d", "e"]


def test_prompt_completion_strings_and_lists():
    [a] = F.prompt_completion({"prompt": "Q", "completion": "A"})
    assert a == [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]
    [b] = F.prompt_completion(
        {
            "prompt": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}],
            "completion": [{"role": "assistant", "content": "A"}],
        }
    )
    assert [m["role"] for m in b] == ["system", "user", "assistant"]


def test_transcript_alternating_turns():
    text = "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: How are you?\n\nAssistant: Fine, thanks."
    [conv] = F.transcript({"chosen": text, "rejected": "..."})
    assert [m["role"] for m in conv] == ["user", "assistant", "user", "assistant"]
    assert conv[-1]["content"] == "Fine, thanks."


_PIECES = ["Human:", "Assistant:", "System:", "\n\n", "\n", " ", "\t", "hi", "Human", ":", "x\n\nHuman: y"]


@given(st.lists(st.sampled_from(_PIECES), max_size=12).map("".join))
def test_transcript_split_equals_the_single_regex(text):
    import re

    oracle = re.compile(r"(?:^|\n\n)(Human|Assistant|System):[ \t]?")
    assert F.split_transcript(text) == oracle.split(text)


def test_column_mapping():
    mapping = F.ColumnMapping(prompt="prompt", response="canonical_solution")
    [conv] = mapping({"prompt": "def f():\n", "canonical_solution": "    return 1\n", "task_id": "X"})
    assert conv[1]["content"] == "    return 1\n"


@pytest.mark.parametrize(
    "row, fmt",
    [
        ({"messages": []}, "openai"),
        ({"conversations": [], "id": 1}, "sharegpt"),
        ({"instruction": "", "instances": []}, "self_instruct"),
        ({"instruction": "", "input": "", "output": ""}, "alpaca"),
        ({"instruction": "", "context": "", "response": ""}, "dolly"),
        ({"prompt": "", "completion": ""}, "prompt_completion"),
        ({"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": ""}, "transcript"),
    ],
)
def test_detect_format(row, fmt):
    assert F.detect_format([row]) == fmt


def test_detect_unknown_is_none():
    assert F.detect_format([{"question": "q", "answer": "a"}]) is None


@pytest.mark.parametrize(
    "messages, field, reason",
    [
        ([], "messages", "empty conversation"),
        ([{"role": "user", "content": "hi"}], "messages", "no assistant turn"),
        ([{"role": "assistant", "content": "hi"}], "messages[0].role", "assistant turn after nothing"),
        (
            [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
            "messages[1].role",
            "two user turns in a row",
        ),
        (
            [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}],
            "messages[1].role",
            "system turn after the start of the conversation",
        ),
        ([{"role": "bot", "content": "a"}], "messages[0].role", "unknown role 'bot'"),
        ([{"role": "user", "content": 3}], "messages[0].content", "content is int, expected a string"),
    ],
)
def test_check_messages_rejects_impossible_conversations(messages, field, reason):
    with pytest.raises(RowError) as e:
        check_messages(messages)
    assert (e.value.field, e.value.reason) == (field, reason)


def test_tool_turns_allowed_after_assistant():
    conv = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "calling"},
        {"role": "tool", "content": "{}"},
        {"role": "assistant", "content": "sunny"},
    ]
    assert check_messages(conv) == conv


texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)


@given(st.lists(st.tuples(texts, texts), min_size=1, max_size=5))
def test_conversation_id_stable_and_content_sensitive(pairs):
    conv = [
        m for q, a in pairs for m in ({"role": "user", "content": q}, {"role": "assistant", "content": a})
    ]
    same = [dict(m, content=f"  {m['content']}\n") for m in conv]  # surrounding whitespace is normalized
    assert conversation_id(conv) == conversation_id(same)
    changed = conv[:-1] + [{"role": "assistant", "content": conv[-1]["content"].strip() + " extra"}]
    assert conversation_id(changed) != conversation_id(conv)


@given(
    st.lists(
        st.tuples(
            st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30).filter(
                lambda s: s.strip() and "Human:" not in s and "Assistant:" not in s and "System:" not in s
            ),
            st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30).filter(
                lambda s: s.strip() and "Human:" not in s and "Assistant:" not in s and "System:" not in s
            ),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_transcript_roundtrip(pairs):
    text = "".join(f"\n\nHuman: {q}\n\nAssistant: {a}" for q, a in pairs)
    [conv] = F.transcript({"chosen": text})
    assert [m["content"] for m in conv] == [x.strip() for q, a in pairs for x in (q, a)]
