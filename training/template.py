"""Training chat template: the inference template with ``{% generation %}`` markers, so that the
loss covers exactly the assistant tokens and the end-of-turn token.

For ChatML-style templates (``<|im_start|>role\\n...<|im_end|>\\n``, with or without a default
system prompt) an equivalent template with markers is derived; it is used only after it renders
exactly what the inference template renders, for every conversation of the run.
"""

from __future__ import annotations

from curation.errors import CurationError

CHATML_TRAINING = (
    "{%- for message in messages %}"
    "{%- if loop.first and message['role'] != 'system' %}{{ DEFAULT_SYSTEM }}{%- endif %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{ '\\n' }}"
    "{%- else %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}"
)


def has_generation_markers(template: str) -> bool:
    import re

    return re.search(r"\{%-?\s*generation\s*-?%\}", template or "") is not None


def training_template(tokenizer) -> str:
    """The tokenizer's template if it has markers, else a derived ChatML template with markers."""
    template = tokenizer.chat_template
    if not template:
        raise CurationError("the model's tokenizer has no chat template")
    if has_generation_markers(template):
        return template
    probe = [{"role": "user", "content": "\x00U\x00"}, {"role": "assistant", "content": "\x00A\x00"}]
    rendered = tokenizer.apply_chat_template(probe, tokenize=False)
    body = "<|im_start|>user\n\x00U\x00<|im_end|>\n<|im_start|>assistant\n\x00A\x00<|im_end|>\n"
    if not rendered.endswith(body):
        raise CurationError(
            "cannot derive a training template with {% generation %} markers for this chat template "
            "(only ChatML-style templates are derived); give the model a template that has them"
        )
    default_system = rendered[: -len(body)]
    derived = CHATML_TRAINING.replace("{{ DEFAULT_SYSTEM }}", "{{ " + repr(default_system) + " }}")
    return derived


def check_same_render(tokenizer, template: str, conversations: list[list[dict]]) -> None:
    """Raise unless the training template renders every conversation exactly as inference does."""
    for gen in (False, True):
        for conv in conversations:
            first_answer = next((i for i, m in enumerate(conv) if m["role"] == "assistant"), len(conv))
            msgs = conv[:first_answer] if gen else conv
            a = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen)
            b = tokenizer.apply_chat_template(
                msgs, tokenize=False, add_generation_prompt=gen, chat_template=template
            )
            if a != b:
                raise CurationError(
                    "the training template renders differently from the inference template for a conversation "
                    f"({[m['role'] for m in msgs]}); refusing to train on a mismatched format"
                )
