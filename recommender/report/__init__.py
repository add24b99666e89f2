"""Renderings for people: the HTML report, observation tables, metrics, notebook views.

- ``html_*``: ``netpol report`` (one self-contained HTML file with the graph);
- ``observations``: the rows, JSON, CSV and table of ``netpol observations``;
- ``metrics``: the OpenMetrics exporter of ``shadow --follow``;
- ``views`` and ``plots``: tables and matplotlib plots for notebooks/walkthrough.ipynb
  (nothing on the command line imports ``plots``, so matplotlib stays out of start-up);
- ``lint``, ``diff``, ``shadow``: the text, Markdown and JSON reports of those commands.

This package sits above every stage (the import contract in ``pyproject.toml``): it
reads their results, and no stage imports it. Two renderings stay with their stage
because they are part of the stage's own output tree, not a report about it:
``recommend.summary`` (``SUMMARY.md`` beside the policies it explains) and
``tighten.report`` (``REPORT.md`` in the tightened tree).
"""
