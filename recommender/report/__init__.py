"""Renderings for people: the HTML report, observation tables, metrics, notebook views.

- ``html_*``: ``netpol report`` (one self-contained HTML file with the graph);
- ``observations``: the rows, JSON, CSV and table of ``netpol observations``;
- ``metrics``: the OpenMetrics exporter of ``shadow --follow``;
- ``views`` and ``plots``: tables and matplotlib plots for notebooks/walkthrough.ipynb
  (nothing on the command line imports ``plots``, so matplotlib stays out of start-up).

Each stage keeps the renderer of its own result beside it (``diff.render``,
``lint.render``, ``shadow.report``, ``tighten.report``); commands render nothing
themselves.
"""
