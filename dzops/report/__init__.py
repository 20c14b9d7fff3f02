"""Reports from results and backups; never connects to a device."""
