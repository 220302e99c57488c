"""The LLM layer, used by generation and evaluation alike: the request/completion contract
(:mod:`sca.llm.contract`), the backends (vLLM, OpenAI-compatible servers, transformers) and the name ->
factory registry (:mod:`sca.llm.registry`)."""
