"""pocketrag: a small local model that answers from web search and your own files."""

__version__ = "0.1.0"
