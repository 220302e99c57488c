"""sca: self-aligning code LLMs (SelfCodeAlign as a reproducible framework)."""

__version__ = "0.1.0"
