"""The ``redis-log-handler`` command: one module per subcommand (``tail``, ``consume``, ``status``, ``demo``),
and the ``web`` folder for the page ``web`` serves.

``main`` parses arguments and dispatches; ``common`` holds what every
subcommand shares (errors, argument types, connecting); ``tail_format`` and
``key_report`` are what ``tail`` and ``status`` print.

May import every other part of the package; nothing imports it but ``__main__``
and the console script.
"""
