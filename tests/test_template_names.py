"""`checks.template_names` reads expression-only templates off the parse tree: the same names as
jinja2's `meta.find_undeclared_variables`, which it still runs for anything else."""

from __future__ import annotations

from pathlib import Path

import pytest
from jinja2 import TemplateAssertionError, TemplateSyntaxError, meta

from runbook.checks import _expression_template_names, template_names
from runbook.loader import read_yaml, strings_in
from runbook.templating import check_syntax, environment, parsed_template

ROOT = Path(__file__).parent.parent

TEMPLATES = [
    "{{ x }}",
    "a {{ x.y }} b {{ z['k'] }}",
    "{{ a + b * c - -d }}",
    "{{ a if b else c }}",
    "{{ a is defined and b is not none }}",
    "{{ a | default(b) | join(', ') }}",
    "{{ xs | map(attribute='name') | list }}",
    "{{ f(a, k=b, *c, **d) }}",
    "{{ [a, (b, c), {'k': d}] }}",
    "{{ a ~ b }}",
    "{{ a[1:b] }}",
    "{{ range(n) | list }}",
    "{{ dict(a=b) }}",
    "{{ lipsum() }}",
    "{{ self.name }}",
    "{{ loop.index }}",
    "{{ super() }}",
    "{{ caller() }}",
    "{{ steps.discover.output.deployments | selectattr('model', 'eq', image.model) | list }}",
    "{{ x | nosuch }}",
    "{{ x is nosuch }}",
    "{% if a %}{{ b }}{% endif %}",
    "{% for i in xs %}{{ i }}{{ loop.index }}{% endfor %}",
    "{% set y = 1 %}{{ y + z }}",
    "{% raw %}{{ not_a_name }}{% endraw %}{{ real }}",
    "{{ 1 / 0 }}",
    "{{ 'text' }} plain",
    "{{ x }}{{ x }}{{ y.x }}",
]


def _meta(text: str) -> set[str] | type[Exception]:
    try:
        return set(meta.find_undeclared_variables(environment().parse(text)))
    except TemplateSyntaxError as exc:
        return type(exc)


def _ours(text: str) -> set[str] | type[Exception]:
    try:
        return template_names(text)
    except TemplateSyntaxError as exc:
        return type(exc)


def _sample_strings() -> list[str]:
    found = []
    for path in sorted([*(ROOT / "runbooks").glob("*.yaml"), *(ROOT / "tests").rglob("*.yaml")]):
        try:
            doc = read_yaml(path, root=ROOT)
        except Exception:  # fixtures include broken files on purpose
            continue
        found += [text for _loc, text in strings_in(doc.data, []) if "{{" in text or "{%" in text]
    return found


@pytest.mark.parametrize("text", TEMPLATES)
def test_names_match_jinja_meta(text: str) -> None:
    expected = _meta(text)
    if expected is TemplateAssertionError:  # an unknown filter or test: the syntax check names it
        assert _ours(text) == set() and "named 'nosuch'" in (check_syntax(text) or "")
    else:
        assert _ours(text) == expected


def test_names_match_jinja_meta_on_every_template_of_the_runbooks_and_fixtures() -> None:
    texts = _sample_strings()
    assert len(texts) > 50
    fast = 0
    for text in texts:
        assert _ours(text) == _meta(text), text
        tree = parsed_template(text)
        fast += tree is not None and _expression_template_names(tree) is not None
    assert fast > len(texts) // 2  # most templates take the tree path


def test_blocks_and_special_names_take_jinjas_own_path() -> None:
    for text in ("{% if a %}{{ b }}{% endif %}", "{{ loop.index }}", "{{ self.x }}", "{{ x | nosuch }}"):
        assert _expression_template_names(parsed_template(text)) is None


def test_the_syntax_check_and_the_names_share_one_parse() -> None:
    text = "{{ shared_parse_probe + 1 }} and {{ other }}"
    assert check_syntax(text) is None
    assert parsed_template(text) is parsed_template(text)
    assert check_syntax("{{ broken ") is not None and parsed_template("{{ broken ") is None
    assert template_names("{{ broken ") == set()
