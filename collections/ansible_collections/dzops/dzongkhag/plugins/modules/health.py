#!/usr/bin/python
"""dzops health as an Ansible module."""

from __future__ import annotations

DOCUMENTATION = r"""
module: health
short_description: Check every link, site, server and access point of a Dzongkhag once
description:
  - Runs C(dzops health) for one Dzongkhag inventory. It checks logins, WAN links (loss and RTT from both ends, OSPF Full),
    each site's LAN from HQ, servers' services and resources, access points' SSIDs.
  - The run is stored in the health history beside C(report_dir), confirmed state changes are mailed, and the status
    page is regenerated. In check mode (dzops' C(--check)) the checks run and nothing is stored, mailed or written.
  - Checking changes nothing, so the task never reports C(changed). A finding (something down or degraded) fails the
    task, as the command's exit code 6 does, unless O(fail_on_findings=false).
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
  site:
    description:
      - Only this site's checks.
    type: str
  fail_on_findings:
    description:
      - Fail the task when something is down or degraded.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Health of the whole Dzongkhag, recorded
  dzops.dzongkhag.health:
    inventory: "{{ playbook_dir }}/../inventory"

- name: One site, nothing stored, findings as data
  dzops.dzongkhag.health:
    inventory: "{{ playbook_dir }}/../inventory"
    site: talo
    fail_on_findings: false
  check_mode: true
  register: talo_health
"""

RETURN = r"""
status:
  description: The run's worst state, C(up), C(degraded) or C(down).
  returned: when dzops ran
  type: str
checks:
  description: One entry per check.
  returned: when dzops ran
  type: list
  elements: dict
  contains:
    key:
      description: What was checked (for example C(link:talo) or C(login:gewog-talo-rtr1)).
      type: str
    kind:
      description: The kind of check.
      type: str
    site:
      description: The site it belongs to.
      type: str
    status:
      description: C(up), C(degraded) or C(down).
      type: str
    failed:
      description: Not up.
      type: bool
    message:
      description: What was found.
      type: str
    rtt_ms:
      description: Round-trip time, where measured.
      type: float
    loss:
      description: Packet loss, where measured.
      type: float
findings:
  description: What is down or degraded, folded behind a down link where it is only a consequence of it.
  returned: when dzops ran
  type: list
  elements: dict
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
    finish,
    forks_argv,
    health_result,
    job_result,
    run_job,
)


def main() -> None:
    argument_spec = dict(COMMON_ARGUMENT_SPEC)
    argument_spec.update(
        site=dict(type="str"),
        fail_on_findings=dict(type="bool", default=True),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    command = ["health", *forks_argv(params)] + (["--site", params["site"]] if params["site"] else [])
    run = run_job(module, command, check=module.check_mode, diff=False)
    result, failed = job_result(run.data, lambda data: health_result(data, params["fail_on_findings"]), dict)
    finish(module, run, result, failed)


if __name__ == "__main__":
    main()
