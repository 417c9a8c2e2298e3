"""The batch writeback: a room of private modules.

``_engine`` runs ``write_back_many`` and the dry-run plan,
``_report`` holds the outcomes and the report (pure), ``_stores`` decides and records what a
batch took (in memory or in the journal), ``_journal`` keeps the SQLite journal a re-run resumes from,
``_rerun`` decides what a re-run sends (pure), ``_writeback`` is a record with its body and
fingerprint (pure) and ``_definitions`` checks a record against the tenant's business
results (pure). Import the public names from :mod:`isales_async`.
"""
