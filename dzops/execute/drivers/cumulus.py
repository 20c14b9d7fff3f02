"""Cumulus-style Linux switches (bash + passwordless sudo, ports swpN in one bridge `br0`), over SSH.

Only what provisioning an AP's uplink port needs: does the port exist, which bridge backend the
switch runs and which VLANs the port carries, and the commands making that exactly the intended
set (`dzops.execute.drivers.bridge`: a VLAN-aware Linux bridge or Open vSwitch, detected on the
switch; a bridge with neither has no VLANs to set).
"""

from __future__ import annotations

from dzops.execute.drivers.bridge import BRIDGE, BridgePorts, PortState
from dzops.execute.drivers.hostapd import Driver as _LinuxDriver

__all__ = ["BRIDGE", "Driver", "PortState"]

# No UUIDs or counters: a backup changes only when a port's VLANs do.
_CONFIG_SCRIPT = r"""
if command -v ovs-vsctl >/dev/null 2>&1 && ovs-vsctl --timeout=10 br-exists "$1" 2>/dev/null; then
  echo "# Open vSwitch ports of $1: name,vlan_mode,tag,trunks"
  ovs-vsctl --timeout=10 --format=csv --no-headings --columns=name,vlan_mode,tag,trunks list port | sort
else
  bridge vlan show
fi
"""


class Driver(_LinuxDriver, BridgePorts):
    """A Cumulus-style switch behind SSH with sudo."""

    def port_state(self, port: str) -> PortState:
        return self.bridge_ports([port])[port]

    def get_config(self) -> str:
        """The bridge ports' VLANs as the switch's own tool prints them (for backups and drift)."""
        return self._checked("reading the bridge VLANs", self.sudo_script(_CONFIG_SCRIPT, BRIDGE))
