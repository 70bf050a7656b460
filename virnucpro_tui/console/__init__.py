"""Plain-terminal front ends, without Textual: the headless progress lines of ``run`` and
``attach --no-ui`` (``headless``), and the Rich progress bars of ``models download``
(``downloads``)."""
