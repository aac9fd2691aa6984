"""The record document (schema 1, and ECS): what both sides agree on.

``document`` builds it from a stdlib record (the one builder every source
uses), ``sources`` from Loguru records and structlog events, ``trace`` adds the
current span; ``encoding`` turns it into JSON within a size limit (and
``call_sites`` writes the same bytes for the common stdlib record from its call
site's parts, encoded once), ``ecs``
lays it out as Elastic Common Schema and back; ``log_record`` rebuilds a
``logging.LogRecord`` from it on the reader's side.

May import ``_shared``; never ``_writer``, ``_reader`` or ``_cli``.
"""
