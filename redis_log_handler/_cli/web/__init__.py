"""The ``web`` command: a page over a key's records, served by Starlette on uvicorn (the ``web`` extra).

``reading`` reads pages of records from Redis (older ones, and the ones after a
cursor), ``filters`` turns the page's address into a ``RecordFilter``, ``guard``
is the security model (the token, the ``Host`` check, the response headers),
``app`` routes requests to them, ``command`` runs the server. ``page/`` holds the
page itself: static HTML, CSS and JavaScript, no build step.

Part of ``_cli``: may import the rest of the package. Only ``_cli.main``
imports it, and only when the command runs (Starlette and uvicorn are an extra).
"""
