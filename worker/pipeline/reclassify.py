"""Re-running the classifier over stored articles (``ingest reclassify``).

Kept apart from storing new articles: it reads stored text, never fetches, and
its only write is the classification (through :mod:`worker.store`).
"""

from __future__ import annotations

from .. import store
from ..classify import classify
from ..db import session_scope
from ..models import Article
from ..settings import get_settings


def reclassify_articles(article_ids: list[int], *, method: str | None = None) -> int:
    """Re-run the classifier over stored articles; returns how many changed.

    ``method`` defaults to the configured one (``INGEST_CLASSIFIER``).
    """
    method = method or get_settings().classifier
    changed = 0
    with session_scope() as session:
        for article_id in article_ids:
            article = session.get(Article, article_id)
            if article is None:
                continue
            result = classify(
                title=article.title, body=article.body, language=article.language, method=method
            )
            if store.update_classification(session, article_id=article_id, classification=result):
                changed += 1
    return changed
