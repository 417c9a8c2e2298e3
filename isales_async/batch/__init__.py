"""The batch writeback: a room of private modules.

- ``_engine``: ``write_back_many`` and the dry-run plan (workers, stopping, ``BatchControl``).
- ``_concurrency``: the adaptive limit the workers consult, fed by the sends.
- ``_adaptive``: the AIMD decisions of ``concurrency="auto"`` (pure).
- ``_report``: each record's outcome, the report, the plan, which errors stop a batch.
- ``_stores``: what a batch took, kept in memory, in its journal, or (a dry run) nowhere.
- ``_journal``: the SQLite journal a re-run resumes from; ``_lock``: its run lock;
  ``_writer``: the thread that writes it during a run, in groups.
- ``_rerun``: what a re-run sends again (pure).
- ``_writeback``: a record with its body and fingerprint (pure).
- ``_definitions``: a record checked against the tenant's business results (pure).

Import the public names from :mod:`isales_async`.
"""
