"""Ukraine-security news-ingestion worker."""

__version__ = "0.1.0"
