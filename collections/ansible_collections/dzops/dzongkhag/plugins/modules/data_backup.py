#!/usr/bin/python
"""dzops data-backup as an Ansible module."""

from __future__ import annotations

DOCUMENTATION = r"""
module: data_backup
short_description: Back up (or verify the backups of) a Dzongkhag's databases and files
description:
  - Runs C(dzops data-backup run) or C(dzops data-backup verify) for one Dzongkhag inventory. Databases are dumped
    consistently and files backed up with restic by the servers' C(data_backups) settings, retention applied; or the
    newest snapshots restored into scratch space and compared.
  - Check mode is dzops' C(--check).
  - When the installed dzops has no C(data-backup) command yet, the task fails and says so; it never reports a
    backup it did not make.
version_added: 1.0.0
author: Dzongkhag ICT Services Unit
extends_documentation_fragment:
  - dzops.dzongkhag.job
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  action:
    description:
      - C(run) backs up; C(verify) restores the newest snapshots into scratch space and compares them.
    type: str
    choices: [run, verify]
    default: run
"""

EXAMPLES = r"""
- name: Back up every server's databases and files
  dzops.dzongkhag.data_backup:
    inventory: "{{ playbook_dir }}/../inventory"

- name: Prove the newest backups restore
  dzops.dzongkhag.data_backup:
    inventory: "{{ playbook_dir }}/../inventory"
    action: verify
"""

RETURN = r"""
devices:
  description: One entry per server.
  returned: when dzops ran
  type: list
  elements: dict
  contains:
    host:
      description: Inventory name of the server.
      type: str
    status:
      description: C(ok), C(changed), C(failed) or C(unreachable).
      type: str
    changed:
      description: A new snapshot was made.
      type: bool
    failed:
      description: Its backup or verification failed, or it was unreachable.
      type: bool
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
    DATA_BACKUP_COMMAND,
    command_available,
    data_backup_result,
    finish,
    job_result,
    missing_dzops_message,
    run_job,
)


def main() -> None:
    argument_spec = dict(COMMON_ARGUMENT_SPEC)
    argument_spec.update(action=dict(type="str", choices=["run", "verify"], default="run"))
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    problem = missing_dzops_message()
    if problem:
        module.fail_json(msg=problem)
    if not command_available(DATA_BACKUP_COMMAND):
        module.fail_json(msg=f"this dzops has no data-backup support yet (no `dzops {DATA_BACKUP_COMMAND}` "
                             "command): nothing was backed up")
    command = [DATA_BACKUP_COMMAND, params["action"]]
    if params["forks"]:
        command += ["--forks", str(params["forks"])]
    run = run_job(module, command, check=module.check_mode, diff=False)
    result, failed = job_result(run.data, data_backup_result, (list, dict))
    # The results' shape is that command's own: whatever it holds, a non-zero exit is not a success.
    finish(module, run, result, failed or run.code != 0)


if __name__ == "__main__":
    main()
