"""A scripted OpenAI-compatible completion server (test double): canned, well-formed answers per stage.

The pipeline reaches it through the real ``openai`` backend, so the end-to-end test exercises every stage
with records that parse, pass or fail in the sandbox, and train, while staying deterministic. Which stage
asks is read from the answer cue the prompt ends with.

    python -m tests.helpers.scripted_server PORT MODEL_NAME
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TASKS = [
    ("running_total", "values", "total = 0\n    out = []\n    for v in values:\n        total += v\n        out.append(total)\n    return out",
     "assert running_total([1, 2, 3]) == [1, 3, 6]\nassert running_total([]) == []"),
    ("count_vowels", "text", "return sum(1 for ch in text.lower() if ch in 'aeiou')",
     "assert count_vowels('Hello World') == 3\nassert count_vowels('') == 0"),
    ("flatten_pairs", "pairs", "return [x for pair in pairs for x in pair]",
     "assert flatten_pairs([(1, 2), (3, 4)]) == [1, 2, 3, 4]\nassert flatten_pairs([]) == []"),
    ("max_gap", "numbers", "if len(numbers) < 2:\n        raise ValueError('need two numbers')\n    s = sorted(numbers)\n    return max(b - a for a, b in zip(s, s[1:]))",
     "assert max_gap([1, 10, 3]) == 7\ntry:\n    max_gap([1])\nexcept ValueError:\n    pass\nelse:\n    raise AssertionError('no error')"),
    ("dedupe_keep_order", "items", "seen = set()\n    out = []\n    for item in items:\n        if item not in seen:\n            seen.add(item)\n            out.append(item)\n    return out",
     "assert dedupe_keep_order([3, 1, 3, 2, 1]) == [3, 1, 2]\nassert dedupe_keep_order('abca') == ['a', 'b', 'c']"),
    ("word_lengths", "sentence", "return {word: len(word) for word in sentence.split()}",
     "assert word_lengths('a bb ccc') == {'a': 1, 'bb': 2, 'ccc': 3}\nassert word_lengths('') == {}"),
]  # fmt: skip


def _digest(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def answer(prompt: str, seed: int) -> str:
    tail = prompt.rstrip()
    if tail.endswith("### Concepts"):
        names = re.findall(r"def (\w+)\(", prompt)
        return f"function definitions, {names[-1] if names else 'loops'} logic, return values\n"
    if tail.endswith("### Task"):
        name, arg, _, _ = TASKS[_digest(prompt[-400:]) % len(TASKS)]
        return f"Write a Python function `{name}({arg})` as its name says, with tests for the edge cases.\n"
    if tail.endswith("<response>"):
        task = prompt[prompt.rfind("<task>") :]
        name, arg, body, tests = next((t for t in TASKS if f"`{t[0]}(" in task), TASKS[0])
        if seed % 3 == 0:  # some samples are wrong, so the sandbox has something to reject
            body = "return None"
        return (
            f"I write `{name}` directly.\n\n```python\ndef {name}({arg}):\n    {body}\n```\n</response>\n\n"
            f"<tests>\nThese checks cover the usual and the edge cases:\n\n```python\n{tests}\n```\n"
        )
    if tail.endswith("### Answer"):
        return "Yes, the docstring says what it returns.\n"
    return "    return None\n```\n"  # evaluation: a wrong answer, scored 0


class Handler(BaseHTTPRequestHandler):
    model = "scripted"
    delay_s = 0.0  # per completion: makes a stage slow enough to be killed half-way

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._send({"data": [{"id": self.model, "max_model_len": 4096}]})

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        time.sleep(self.delay_s)
        text = answer(body["prompt"], int(body.get("seed") or 0))
        self._send(
            {
                "choices": [{"text": text, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": len(body["prompt"]) // 4, "completion_tokens": len(text) // 4},
            }
        )


def serve(port: int, model: str, delay_s: float = 0.0) -> ThreadingHTTPServer:
    handler = type("ScriptedHandler", (Handler,), {"model": model, "delay_s": delay_s})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2])
    threading.Event().wait()
