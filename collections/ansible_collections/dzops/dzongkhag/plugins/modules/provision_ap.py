#!/usr/bin/python
"""dzops provision-ap as an Ansible module."""

from __future__ import annotations

DOCUMENTATION = r"""
module: provision_ap
short_description: Configure a Dzongkhag's access points and their uplink switch ports, verified
description:
  - Runs C(dzops provision-ap) for one Dzongkhag inventory. Each access point's files are saved, its intended SSIDs
    applied and verified (every SSID enabled with the right security and VLAN); the saved files are restored on
    failure. Its uplink switch port is configured with it. A second run changes nothing.
  - Check mode is dzops' C(--check); diff mode is dzops' C(--diff) (PSKs masked).
version_added: 1.0.0
author: Dzongkhag ICT Services Unit
extends_documentation_fragment:
  - dzops.dzongkhag.job
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
options:
  access_points:
    description:
      - Access point names (group C(access_points)). Exactly one of O(access_points), O(site) and O(all) is given.
    type: list
    elements: str
  site:
    description:
      - Every access point of this site.
    type: str
  all:
    description:
      - Every access point of the inventory.
    type: bool
    default: false
  verify_timeout:
    description:
      - Seconds to wait for every SSID to verify.
    type: float
    default: 60.0
"""

EXAMPLES = r"""
- name: Every access point of the Dzongkhag
  dzops.dzongkhag.provision_ap:
    inventory: "{{ playbook_dir }}/../inventory"
    all: true

- name: What one access point would change
  dzops.dzongkhag.provision_ap:
    inventory: "{{ playbook_dir }}/../inventory"
    access_points: [gewog-talo-ap1]
  check_mode: true
  diff: true
"""

RETURN = r"""
devices:
  description: One entry per access point.
  returned: when dzops ran
  type: list
  elements: dict
  contains:
    host:
      description: Inventory name of the access point.
      type: str
    status:
      description: C(ok), C(changed), C(failed), C(rolled_back) or C(unreachable).
      type: str
    changed:
      description: Its files changed (or would, in check mode).
      type: bool
    failed:
      description: It failed, was restored, or was unreachable.
      type: bool
    ssids:
      description: Its SSIDs with their VLANs.
      type: list
      elements: dict
    switch_port:
      description: What happened to its uplink switch port.
      type: dict
    diff:
      description: Its diff, PSKs masked.
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
    ap_result,
    diff_entries,
    finish,
    forks_argv,
    job_result,
    run_job,
)


def main() -> None:
    argument_spec = dict(COMMON_ARGUMENT_SPEC)
    argument_spec.update(
        access_points=dict(type="list", elements="str"),
        site=dict(type="str"),
        all=dict(type="bool", default=False),
        verify_timeout=dict(type="float", default=60.0),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    # The command line's bare `provision-ap` means "check everything"; a task says what it wants.
    # Counted by value, not presence: a play passes all three, with the unused ones empty or false.
    given = [name for name in ("access_points", "site", "all") if params[name]]
    if len(given) != 1:
        module.fail_json(msg="exactly one of access_points, site or all=true is required (given: "
                             + (", ".join(given) or "none") + ")")
    command = ["provision-ap", *forks_argv(params), "--verify-timeout", str(params["verify_timeout"])]
    if params["site"]:
        command += ["--site", params["site"]]
    elif params["all"]:
        command.append("--all")
    else:
        command += ["--", *params["access_points"]]
    run = run_job(module, command, check=module.check_mode, diff=module._diff)
    result, failed = job_result(run.data, lambda data: ap_result(data, module.check_mode), list)
    if module._diff:
        result["diff"] = diff_entries(result.get("devices", []))
    finish(module, run, result, failed)


if __name__ == "__main__":
    main()
