#!/usr/bin/python
"""dzops backup as an Ansible module."""

from __future__ import annotations

DOCUMENTATION = r"""
module: backup
short_description: Back up every device's configuration of a Dzongkhag into its git repository
description:
  - Runs C(dzops backup) for one Dzongkhag inventory. It pulls each device's configuration in parallel, removes
    secrets, and commits what changed into the inventory's C(backup_repository).
  - In check mode (dzops' C(--check)) the configurations are read and compared with the repository; nothing is
    written.
  - O(limit) and the other common options narrow the devices exactly as on the command line.
version_added: 1.0.0
author: Dzongkhag ICT Services Unit
extends_documentation_fragment:
  - dzops.dzongkhag.job
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: partial
    details: Lists each device's changed files; the content diff is the repository's C(git log -p).
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: Back up the Dzongkhag's device configurations
  dzops.dzongkhag.backup:
    inventory: "{{ playbook_dir }}/../inventory"

- name: Which gewog routers would change (nothing is committed)
  dzops.dzongkhag.backup:
    inventory: /srv/dzops/punakha
    limit: "gewog_routers"
  check_mode: true
"""

RETURN = r"""
devices:
  description: One entry per device, in inventory order.
  returned: when dzops ran
  type: list
  elements: dict
  contains:
    host:
      description: Inventory name of the device.
      type: str
    status:
      description: C(ok), C(failed) or C(unreachable).
      type: str
    changed:
      description: Its files differ from the repository's (committed now, or would be in check mode).
      type: bool
    failed:
      description: The device could not be backed up.
      type: bool
    files:
      description: Names of the files collected from it.
      type: list
      elements: str
    changed_files:
      description: Repository paths of its files that changed.
      type: list
      elements: str
    error:
      description: Why it failed (scrubbed), else null.
      type: str
repository:
  description: The backup repository.
  returned: when dzops ran
  type: str
commit:
  description: The commit made by this run; null when nothing changed or in check mode.
  returned: when dzops ran
  type: str
previous:
  description: The repository's commit before this run.
  returned: when dzops ran
  type: str
dzongkhags:
  description:
    - When O(inventory) is a folder of Dzongkhag inventories, each Dzongkhag's inventory, exit code, C(failed) and the
      rest of its result; every row of the lists above then names its Dzongkhag in C(dzongkhag).
  returned: when O(inventory) is a folder of Dzongkhag inventories
  type: dict
rc:
  description: The exit code the C(dzops) command line would have given.
  returned: when dzops ran
  type: int
messages:
  description: dzops' messages for people (its stderr lines).
  returned: when dzops ran
  type: list
  elements: str
command:
  description: The equivalent C(dzops) command line.
  returned: when dzops ran
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402 - Ansible reads the docs above first
from ansible_collections.dzops.dzongkhag.plugins.module_utils.dzops_job import (  # noqa: E402
    COMMON_ARGUMENT_SPEC,
    backup_result,
    finish,
    forks_argv,
    job_result,
    run_job,
)


def main() -> None:
    module = AnsibleModule(argument_spec=dict(COMMON_ARGUMENT_SPEC), supports_check_mode=True)
    run = run_job(module, ["backup", *forks_argv(module.params)], check=module.check_mode, diff=False)
    result, failed = job_result(run.data, backup_result, dict)
    if module._diff:
        result["diff"] = [{"prepared": f"--- {d['host']}\n" + "\n".join(d["changed_files"])}
                          for d in result.get("devices", []) if d["changed_files"]]
    finish(module, run, result, failed)


if __name__ == "__main__":
    main()
