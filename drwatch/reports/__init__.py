"""drwatch reports: compliance and management PDFs evaluated from the history store.

Reads only the history (never AWS). Imports `drwatch.core`, `drwatch.config` and
`drwatch.history`, never the exporter: `drwatch.cli` is what wires the two together.

- `catalogue`: the controls catalogue (DRW-01..14), statuses, framework mappings (data).
- `evidence`: the period, the policies, the evidence of each subject, findings and results.
- `loading`, `units`: reading that evidence from the history database.
- `controls`: one module per control family, registered by id in `controls.CHECKS`.
- `evaluate`: every control over a period; `compliance`, `management`, `cost`: the reports.
"""
