"""CAP 1.2 (OASIS Common Alerting Protocol): our actions as CAP alerts, CAP alerts as draft actions.

`CAP-v1.2.xsd` is the OASIS schema (docs.oasis-open.org/emergency/cap/v1.2/CAP-v1.2.xsd, copyright
OASIS Open 2010, published for verbatim use); every message we write and every one we accept is checked
against it.
"""
