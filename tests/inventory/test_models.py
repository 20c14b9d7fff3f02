"""The inventory models as the CLI's start-up meets them."""

import subprocess
import sys

from dzops.inventory import models as m


def test_importing_the_models_builds_no_validator():
    """A warm run unpickles its inventory and validates nothing, so a schema built at import is start-up
    time every command pays for nothing (a default written as an instance builds its model's schema)."""
    probe = ("import pydantic, dzops.inventory.models as m\n"
             "built = [n for n, c in vars(m).items() if isinstance(c, type) and issubclass(c, pydantic.BaseModel)"
             " and c.__pydantic_complete__]\n"
             "print(','.join(built))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


def test_defaults_made_on_use_equal_the_models_own_defaults():
    assert m.DataBackup.model_fields["retention"].get_default(call_default_factory=True) == m.BackupRetention()
    assert m.Device.model_fields["health_thresholds"].get_default(call_default_factory=True) == m.HealthThresholds()
    assert m.Inventory.model_fields["schedules"].get_default(call_default_factory=True) == m.Schedules()
    assert m.Inventory.model_fields["health"].get_default(call_default_factory=True) == m.HealthSettings()
