"""Rendering prompts (completion and chat) and parsing real-looking and malformed completions."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from sca.generate.fewshot import load_examples, load_judge_examples, sample
from sca.generate.prompting import (
    EXAMPLE_HEADER,
    ParseError,
    fill,
    load_template,
    parse_concepts,
    parse_instruction,
    parse_response,
    parse_verdict,
    render,
)
from sca.llm.contract import request_seed

# A completion as a base model writes it after "<response>\n": reasoning, one block, the tests section.
GOOD = """To reverse the words I split on whitespace and join the reversed list.

```python
def reverse_words(text):
    return " ".join(reversed(text.split()))
```

This handles repeated spaces because `split()` without arguments collapses them.
</response>

<tests>
A few checks:

```python
assert reverse_words("a b  c") == "c b a"
assert reverse_words("") == ""
```
"""


def test_parse_response_splits_reasoning_solution_and_tests() -> None:
    parsed = parse_response(GOOD)
    assert parsed.text.startswith("To reverse the words") and parsed.text.endswith("collapses them.")
    assert "<tests>" not in parsed.text and "assert" not in parsed.text
    assert parsed.solution == 'def reverse_words(text):\n    return " ".join(reversed(text.split()))\n'
    assert parsed.tests == 'assert reverse_words("a b  c") == "c b a"\nassert reverse_words("") == ""\n'


def test_parse_response_tolerates_a_kept_stop_string_and_untagged_blocks() -> None:
    kept_stop = GOOD + "</tests>\n## Example 3\nnoise"
    assert parse_response(kept_stop).tests == parse_response(GOOD).tests
    untagged = GOOD.replace("```python", "```")
    assert parse_response(untagged).solution == parse_response(GOOD).solution
    # A non-Python block (sample output) beside the tagged solution is not a second solution.
    with_output = GOOD.replace("This handles", "```text\nc b a\n```\nThis handles")
    assert parse_response(with_output).solution == parse_response(GOOD).solution


def test_several_python_blocks_are_one_solution_in_document_order() -> None:
    helper = "```python\ndef _words(text):\n    return text.split()\n```\n\nThen the function itself:\n\n"
    usage = "\n\nUsage:\n\n```py\nprint(reverse_words('x y'))\n```\n\n```text\ny x\n```\n"
    text = GOOD.replace("```python\ndef reverse_words", helper + "```python\ndef reverse_words").replace(
        "This handles", usage + "This handles"
    )
    parsed = parse_response(text)
    assert parsed.solution == (
        "def _words(text):\n    return text.split()\n\n"
        'def reverse_words(text):\n    return " ".join(reversed(text.split()))\n\n'
        "print(reverse_words('x y'))\n"
    ), "every python block, in order, a blank line apart; the text block is sample output, not code"
    assert parsed.text.count("```python") == 2 and "<tests>" not in parsed.text
    assert parsed.tests == parse_response(GOOD).tests
    # Several test blocks are one test program too.
    two_tests = text.replace(
        'assert reverse_words("") == ""\n```', '```\n\n```python\nassert reverse_words("") == ""\n```'
    )
    assert parse_response(two_tests).tests == parsed.tests.replace("\nassert", "\n\nassert")


@pytest.mark.parametrize(
    ("completion", "reason"),
    [
        ("", "empty"),
        ("   \n\n", "empty"),
        (GOOD.split("</response>")[0], "no_tests"),  # stopped before writing tests
        (GOOD.replace("<tests>", "Tests:"), "no_tests"),
        (GOOD.replace("A few checks:\n\n```python", "A few checks:\n\n").replace('== ""\n```', '== ""\n'), "no_tests"),
        (GOOD.replace("assert", "print"), "no_asserts"),
        (
            GOOD.replace("```python\ndef", "def").replace(
                '    return " ".join(reversed(text.split()))\n```', '    return " ".join(reversed(text.split()))'
            ),
            "no_code",
        ),
        (GOOD.replace("return", "# TODO: return"), "placeholder"),
        (GOOD.replace("return", "raise NotImplementedError  #"), "placeholder"),
        (GOOD + "\n</response>\n", "multiple_responses"),
        # Code cut mid-block by a stop string (the fence never closes): truncated code.
        ("Here it is:\n\n```python\ndef f(x):\n    return x +", "no_tests"),
        (
            "Here it is:\n\n```python\ndef f(x):\n    return x +\n</response>\n\n<tests>\n```python\nassert f(1) == 2\n```",
            "unclosed_code",
        ),
        (GOOD.rsplit("```", 1)[0], "unclosed_code"),  # tests block cut
    ],
)
def test_malformed_responses_are_rejected_with_a_reason(completion: str, reason: str) -> None:
    with pytest.raises(ParseError) as err:
        parse_response(completion)
    assert err.value.reason == reason


def test_parse_concepts() -> None:
    assert parse_concepts(" recursion, memoization ,  dynamic programming.\n\n## Example 9\nnoise") == [
        "recursion",
        "memoization",
        "dynamic programming",
    ]
    assert parse_concepts("\n\nsets, sets, hashing") == ["sets", "hashing"]
    for empty in ("", " \n ", ", ,"):
        with pytest.raises(ParseError, match="empty"):
            parse_concepts(empty)


def test_parse_instruction() -> None:
    assert parse_instruction("\n  Write a function.\n") == "Write a function."
    with pytest.raises(ParseError, match="empty"):
        parse_instruction(" \n")


@pytest.mark.parametrize(
    ("texts", "verdict"),
    [
        (["Yes"], True),
        ([" yes\nThe docstring gives no detail of the error path."], True),  # only the first line counts
        (["No\nyes it is long"], False),
        (["Yes", "No"], None),  # tie: not kept
        (["maybe"], None),
        ([""], None),
        (["Yes", "yes", "No"], True),
        (["Nope"], None),  # not the word "no"
    ],
)
def test_parse_verdict(texts: list[str], verdict: bool | None) -> None:
    assert parse_verdict(texts) is verdict


def test_completion_prompt_layout() -> None:
    template = load_template("concepts.txt")
    examples = [e.fields() for e in load_examples()]
    query = {"seed": "def f(x):\n    '''Double x.'''\n    return 2 * x"}
    rendered = render(template, examples[:2], query, chat=False)
    assert isinstance(rendered.prompt, str)
    assert rendered.prompt.startswith(template.system)
    assert rendered.prompt.count(EXAMPLE_HEADER) == 3
    assert rendered.prompt.endswith(
        f"{EXAMPLE_HEADER} 3\n### Snippet\n```python\n{query['seed']}\n```\n\n### Concepts\n"
    )
    assert ", ".join(load_examples()[0].concepts) in rendered.prompt
    assert rendered.prefix == "" and rendered.stop[0] == EXAMPLE_HEADER


def test_chat_prompt_has_examples_as_prior_turns_and_the_cue_as_prefix() -> None:
    template = load_template("responses.txt")
    examples = [e.fields() for e in load_examples()]
    rendered = render(template, examples[:1], {"instruction": "Write `f`."}, chat=True)
    messages = rendered.prompt
    assert isinstance(messages, list)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[-1]["content"] == "<task>\nWrite `f`.\n</task>"
    assert messages[2]["content"].startswith("<response>\n") and messages[2]["content"].endswith("</tests>")
    assert rendered.prefix == "<response>\n" and "</tests>" in rendered.stop
    # The gold answer of an example, parsed like a completion, gives that example's code back.
    assert parse_response(messages[2]["content"].removeprefix("<response>\n")).solution.startswith(
        ("def", "import", "from", "class", "@")
    )


def test_chat_render_through_the_real_template(tiny_model_dir: Path) -> None:
    from sca.models import load_tokenizer, render_prompt

    template = load_template("judge.txt")
    shots = [j.fields() for j in load_judge_examples()[:2]]
    rendered = render(template, shots, {"code": "def f(): ...", "docstring": "Nothing."}, chat=True)
    assert isinstance(rendered.prompt, list)
    text = render_prompt(load_tokenizer(str(tiny_model_dir)), rendered.prompt, rendered.prefix)
    assert text.endswith("<|im_start|>assistant\n### Answer\n")
    assert text.count("<|im_start|>assistant") == 3


def test_few_shot_selection_is_per_record_and_reproducible() -> None:
    examples = load_examples()
    pick = [e.name for e in sample(examples, 8, random.Random("0:abc:concepts"))]
    assert pick == [e.name for e in sample(examples, 8, random.Random("0:abc:concepts"))]
    assert len(set(pick)) == 8
    assert pick != [e.name for e in sample(examples, 8, random.Random("0:abd:concepts"))]
    assert request_seed(0, "abc", "concepts") != request_seed(0, "abc", "responses")


def test_fill_names_a_missing_field() -> None:
    with pytest.raises(KeyError, match=r"\{concepts\}"):
        fill("x {concepts}", {"seed": "s"}, "concepts.txt")
    assert fill("{a}", {"a": "{b} {a}"}, "") == "{b} {a}"  # values are not re-expanded


def test_bad_template_files_fail_with_the_file_and_problem(tmp_path: Path) -> None:
    good = Path(load_template("concepts.txt").path).read_text()
    (tmp_path / "examples.yaml").write_bytes(load_template("concepts.txt").examples.read_bytes())
    cases = {
        "unknown.txt": (good.replace("@@ cue", "@@ queue"), "unknown section 'queue'"),
        "missing.txt": (good.replace("@@ output\n{concepts}\n", ""), r"missing sections \['output'\]"),
        "nopin.txt": (good.replace(" sha256=", " sha="), "must be one line"),
        "leading.txt": ("hello\n" + good, "before the first"),
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=message) as err:
            load_template(str(tmp_path / name))
        assert name in str(err.value)
