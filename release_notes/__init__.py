"""Release notes from git history: commits between two refs → detailed weekly notes.

Import-light on purpose: importing this package (or :mod:`release_notes.commits`) does not
import GitPython, Jinja or click. Layers, lowest first:

- :mod:`release_notes.commits` (pure): ``parse_commit(sha, parents, author, date, message)
  -> ParsedCommit``; Conventional Commits, PR numbers, issue refs, trailers, reverts.
- :mod:`release_notes.config` (pure but for ``load_config``): ``NotesConfig``,
  ``load_config(path) -> NotesConfig``, ``config_from_dict(data) -> NotesConfig``.
- :mod:`release_notes.people` (pure): ``identity_keys(person)``, ``People`` (one person
  across emails, names, GitHub noreply logins).
- :mod:`release_notes.notes` (pure): ``build_release_notes(commits, *, version, date,
  config=None, known_authors=None, shipped=None, shipped_in=None) -> ReleaseNotes``;
  every commit shown or filtered once; dependency updates as table rows.
- :mod:`release_notes.render` (pure): ``render_markdown(notes, template=None) -> str``,
  ``iter_markdown(notes, template=None)``, ``to_json_dict(notes) -> dict``,
  ``render_json(notes) -> str``. The packaged template is written directly by
  ``iter_default_markdown`` (same output, no Jinja); custom templates go through Jinja.
- :mod:`release_notes.git_history` (git through GitPython, streamed): ``open_repo``,
  ``resolve_range`` (one ``git cat-file --batch-check``), ``CommitLog`` (one streamed
  ``git log --boundary``; also says whether ``from`` is an ancestor), ``open_range``
  (both side by side), ``previous_release_tag``, ``AuthorScan`` / ``first_time_authors``
  (by identity keys), ``map_co_authors`` (``.mailmap``).
- :mod:`release_notes.shipped` (git): ``find_shipped`` — the commits of a range whose
  change already shipped in ``from`` (``cherry-pick -x`` lines, ``git patch-id``).
- :mod:`release_notes.generate`: what the service calls::

      generate_for_range(repo_path, from_ref: str | None, to_ref: str, *,
                         version: str | None = None, date: str | None = None,
                         config: NotesConfig | None = None, from_root: bool = False,
                         progress: Callable[[int], None] | None = None) -> ReleaseNotes
      render_notes(notes, fmt="markdown" | "json", config=None) -> str
      generate_notes(repo_path, from_ref, to_ref, *, config=None, fmt="markdown",
                     version=None, date=None, from_root=False) -> str

- :mod:`release_notes.cli`: the click group ``notes_cli`` (``notes generate``); the
  command itself is ``release_notes.cli.generate``. ``python -m release_notes generate``.

Every input error is a :class:`release_notes.errors.NotesError` with a one-line message.
"""

from release_notes.errors import NotesError

__all__ = ["NotesError"]
