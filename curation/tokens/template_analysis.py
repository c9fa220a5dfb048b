"""Static analysis of a chat template: does it only ever print message contents verbatim?

If every use of a message's ``content`` in the template is printed as is (``{{ ... + message['content']
+ ... }}``), never filtered (``| trim``), tested (``if 'x' in message['content']``), assigned or
called, then the rendered text is a fixed skeleton, which depends on the sequence of roles only,
with the contents inserted. Rendering then needs no template engine per row.
"""

from __future__ import annotations

from jinja2 import Environment, nodes
from jinja2.ext import Extension, loopcontrols


class _Generation(Extension):
    """Parses ``{% generation %}...{% endgeneration %}`` (trl/transformers markers) as plain output."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.Scope(body).set_lineno(lineno)


_PASS_THROUGH = (nodes.Add, nodes.Concat)


def content_is_verbatim(template: str) -> bool:
    try:
        ast = Environment(extensions=[loopcontrols, _Generation]).parse(template)
    except Exception:  # noqa: BLE001 - unparsable here: assume the worst
        return False
    return _check(ast, [])


def _is_content_access(node) -> bool:
    if isinstance(node, nodes.Getattr):
        return node.attr == "content"
    if isinstance(node, nodes.Getitem):
        return isinstance(node.arg, nodes.Const) and node.arg.value == "content"
    return False


def _check(node, stack: list) -> bool:
    if _is_content_access(node):
        for parent in reversed(stack):
            if isinstance(parent, _PASS_THROUGH):
                continue
            return isinstance(parent, nodes.Output)
        return False
    if isinstance(node, nodes.Const) and node.value == "content":
        return False  # "content" used some other way (message.get('content'), a loop over keys, ...)
    stack.append(node)
    ok = all(_check(child, stack) for child in node.iter_child_nodes())
    stack.pop()
    return ok
