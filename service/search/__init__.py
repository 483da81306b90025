"""Search: one box over every release's notes, store-facing notes, commits, incidents and
meeting minutes, in Japanese and English, across apps and years.

- ``models`` (the index table; its full-text indexes are in migration 0006).
- ``text`` (pure: normalising, query terms, grams, highlighting).
- ``index`` (writing: sources, refreshing one owner, rebuilding), ``sources`` (what is
  indexed, and the reactions that keep it current), ``query`` (searching, ranking, the
  store-facing changes across versions).
- ``views`` (pages), ``api`` (``/api/v1/search``, store changes), ``cli`` (``relgov
  search``), ``demo``.
"""
