"""drwatch reports: compliance and management PDFs evaluated from the history store.

Reads only the history (never AWS) and imports only `exporter.model` from the exporter.
"""
