"""Credentials never reach a log, the console or a tracking store: a password in a URL
(`postgresql://user:secret@host/db`, `https://user:token@mlflow.lab`) or in a query
(`?password=...`) is written as `***` wherever qtrain logs a URL or a config."""

from __future__ import annotations

import logging
import re

_USERINFO = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/?#@\s]*):[^@/\s]*@")
_QUERY = re.compile(r"(?P<head>[?&;](?:password|passwd|pwd|token|secret|api_key)=)[^&;\s'\"]*", re.IGNORECASE)


def redact(text: str) -> str:
    """`text` with the passwords of the URLs in it replaced by ***."""
    return _QUERY.sub(r"\g<head>***", _USERINFO.sub(r"\g<head>:***@", text))


class RedactingFilter(logging.Filter):
    """A logging filter (hydra.job_logging, hydra.hydra_logging) that redacts each record:
    Hydra's, the Optuna sweeper's `Storage:` line, MLflow's and qtrain's alike."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True
