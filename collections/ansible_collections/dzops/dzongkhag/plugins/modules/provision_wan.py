#!/usr/bin/python
"""dzops provision-wan as an Ansible module."""

from __future__ import annotations

DOCUMENTATION = r"""
module: provision_wan
short_description: Bring a Dzongkhag's WAN links up end to end, verified, or change nothing
description:
  - Runs C(dzops provision-wan) for one Dzongkhag inventory. For each link both ends are saved, the intended
    configuration is applied, the link is verified (interface up, OSPF Full or route, pings) and rolled back when
    verification fails. A second run changes nothing.
  - Check mode is dzops' C(--check) (each router's diff, nothing touched); diff mode is dzops' C(--diff).
  - With O(limit), a link is in scope when either end is in the limit; its far end is configured too.
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
  links:
    description:
      - WAN link names (the inventory's C(wan_links)). Exactly one of O(links), O(site) and O(all) is given.
    type: list
    elements: str
  site:
    description:
      - Every link with an end at this site.
    type: str
  all:
    description:
      - Every WAN link of the inventory.
    type: bool
    default: false
  verify_timeout:
    description:
      - Seconds to wait for a link to verify.
    type: float
    default: 90.0
"""

EXAMPLES = r"""
- name: Every WAN link of the Dzongkhag, verified
  dzops.dzongkhag.provision_wan:
    inventory: "{{ playbook_dir }}/../inventory"
    all: true

- name: What the links of one site would change on each router
  dzops.dzongkhag.provision_wan:
    inventory: "{{ playbook_dir }}/../inventory"
    site: talo
  check_mode: true
  diff: true
"""

RETURN = r"""
links:
  description: One entry per link.
  returned: when dzops ran
  type: list
  elements: dict
  contains:
    link:
      description: The link's name.
      type: str
    status:
      description: C(ok), C(changed), C(failed), C(rolled_back), C(unreachable) or C(skipped).
      type: str
    changed:
      description: The link was configured (or would be, in check mode).
      type: bool
    failed:
      description: It failed, was rolled back, or an end was unreachable.
      type: bool
    verified:
      description: Its checks passed after the change.
      type: bool
    subnet:
      description: Its point-to-point subnet.
      type: str
devices:
  description: One entry per router, over all of its links in scope.
  returned: when dzops ran
  type: list
  elements: dict
  contains:
    host:
      description: Inventory name of the router.
      type: str
    status:
      description: Its worst status over its links.
      type: str
    changed:
      description: Its configuration changed (or would, in check mode).
      type: bool
    failed:
      description: It failed, was rolled back or was unreachable.
      type: bool
    links:
      description: Its links in scope.
      type: list
      elements: str
    diff:
      description: Its configuration diff, secrets masked.
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
    diff_entries,
    finish,
    forks_argv,
    job_result,
    run_job,
    wan_result,
)


def main() -> None:
    argument_spec = dict(COMMON_ARGUMENT_SPEC)
    argument_spec.update(
        links=dict(type="list", elements="str"),
        site=dict(type="str"),
        all=dict(type="bool", default=False),
        verify_timeout=dict(type="float", default=90.0),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    # Counted by value, not presence: a play passes all three, with the unused ones empty or false.
    given = [name for name in ("links", "site", "all") if params[name]]
    if len(given) != 1:
        module.fail_json(msg="exactly one of links, site or all=true is required (given: "
                             + (", ".join(given) or "none") + ")")
    command = ["provision-wan", *forks_argv(params), "--verify-timeout", str(params["verify_timeout"])]
    if params["site"]:
        command += ["--site", params["site"]]
    elif params["all"]:
        command.append("--all")
    else:
        command += ["--", *params["links"]]
    run = run_job(module, command, check=module.check_mode, diff=module._diff)
    result, failed = job_result(run.data, lambda data: wan_result(data, module.check_mode), list)
    if module._diff:
        result["diff"] = diff_entries(result.get("devices", []))
    finish(module, run, result, failed)


if __name__ == "__main__":
    main()
