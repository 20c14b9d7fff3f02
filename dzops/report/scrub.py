"""The scrubber, where the report layer has always found it: `dzops.scrub` is the one implementation.

It moved down to `dzops.scrub` so that every layer (execute's runner artifacts, the CLI's output)
can use the same egress filter without importing the report layer.
"""

from __future__ import annotations

from dzops.scrub import (
    ANY,
    MARKER,
    SYNTAXES,
    Rule,
    SecretFilter,
    egress,
    egress_data,
    egress_html,
    forget_secrets,
    install_excepthook,
    install_log_filter,
    inventory_secrets,
    mask_values,
    register_secrets,
    registered_secrets,
    scrub,
    scrub_secrets,
    syntax_for,
    table,
)

__all__ = ["ANY", "MARKER", "SYNTAXES", "Rule", "SecretFilter", "egress", "egress_data", "egress_html", "forget_secrets",
           "install_excepthook", "install_log_filter", "inventory_secrets", "mask_values", "register_secrets", "registered_secrets",
           "scrub", "scrub_secrets", "syntax_for", "table"]
