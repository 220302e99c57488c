"""Curation: from executed responses to the SFT dataset, as named phases (``phase(candidates) -> (kept, drops)``).

``step.py`` is the ``sft_data`` step (read, apply the phases, write); ``phases.py`` the phases in order;
``format.py`` the rules on one response's text; ``dedup.py`` (MinHash) and ``decontam.py`` (HumanEval/MBPP
overlap) are used by the seeds step too.
"""
