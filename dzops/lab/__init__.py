"""The virtual Dzongkhag: namespaces, links and daemons built from the inventory."""
