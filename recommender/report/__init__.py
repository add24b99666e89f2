"""Notebook views of a recommendation: tables (``views``) and plots (``plots``).

Used by notebooks/walkthrough.ipynb only; nothing in the pipeline imports it,
so matplotlib stays out of the command-line start-up.
"""
