#!/usr/bin/python
"""dzops drift (and drift --remediate) as an Ansible module."""

from __future__ import annotations

DOCUMENTATION = r"""
module: drift
short_description: Report configuration drift of a Dzongkhag's devices, or put drifted routers back
description:
  - Runs C(dzops drift) for one Dzongkhag inventory. Every device's configuration is collected and recorded in the
    backup repository, each router is compared with its intended configuration, out-of-band changes since the last
    report are listed, and an HTML and a text report are saved under the inventory's C(report_dir).
  - A report changes no device, so the task never reports C(changed) for it; drift fails the task (as the
    command's exit code 6 does) unless O(fail_on_drift=false).
  - A drift report writes a report, a backup commit and the drift state; in check mode it is skipped.
  - With O(remediate=true), drifted routers are put back to their intended configuration through the safe path
    (preflight, replace, verify, roll back on failure). Check mode maps to dzops' C(--check) and diff mode to
    C(--diff) there.
version_added: 1.0.0
author: Dzongkhag ICT Services Unit
extends_documentation_fragment:
  - dzops.dzongkhag.job
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: partial
    details: With O(remediate=true), nothing is changed and the commands are returned; a report is skipped.
  diff_mode:
    support: full
  platform:
    platforms: posix
options:
  hosts:
    description:
      - Only these devices (names or patterns); with O(remediate=true), the devices to put back.
    type: list
    elements: str
    default: []
  remediate:
    description:
      - Put drifted routers back to their intended configuration instead of writing a report.
    type: bool
    default: false
  email:
    description:
      - Mail the report to the inventory's recipients (not with O(remediate=true)).
    type: bool
    default: false
  fail_on_drift:
    description:
      - Fail the task when drift is found, as the command's exit code does.
    type: bool
    default: true
  verify_timeout:
    description:
      - With O(remediate=true), seconds to wait for a router's WAN links to verify.
    type: float
    default: 90.0
"""

EXAMPLES = r"""
- name: Drift report of the Dzongkhag, mailed
  dzops.dzongkhag.drift:
    inventory: "{{ playbook_dir }}/../inventory"
    email: true

- name: Show what putting gewog-talo-rtr1 back would change
  dzops.dzongkhag.drift:
    inventory: "{{ playbook_dir }}/../inventory"
    hosts: [gewog-talo-rtr1]
    remediate: true
  check_mode: true
  diff: true
"""

RETURN = r"""
devices:
  description: One entry per device.
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
      description: Remediation changed it (or would, in check mode); always false for a report.
      type: bool
    failed:
      description: The device could not be checked or put back.
      type: bool
    drifted:
      description: The report found drift on it (report only).
      type: bool
    findings:
      description: The report's findings on it, secrets removed (report only).
      type: list
      elements: dict
    commands:
      description: The commands remediation applies, or would apply (remediate only).
      type: list
      elements: str
drifted:
  description: Devices with drift (report only).
  returned: when a report ran
  type: list
  elements: str
drift:
  description: Whether the report found any drift.
  returned: when a report ran
  type: bool
counts:
  description: Devices, drifted, unreachable and findings by kind and severity.
  returned: when a report ran
  type: dict
report:
  description: Paths of the saved HTML and text report.
  returned: when a report ran
  type: dict
refused:
  description: Selected devices without an intended configuration, left alone (remediate only).
  returned: when remediation ran
  type: list
  elements: str
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
    drift_result,
    finish,
    forks_argv,
    job_result,
    remediate_result,
    run_job,
)


def main() -> None:
    argument_spec = dict(COMMON_ARGUMENT_SPEC)
    argument_spec.update(
        hosts=dict(type="list", elements="str", default=[]),
        remediate=dict(type="bool", default=False),
        email=dict(type="bool", default=False),
        fail_on_drift=dict(type="bool", default=True),
        verify_timeout=dict(type="float", default=90.0),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    if params["remediate"] and params["email"]:  # by value: a play passes both, one of them false
        module.fail_json(msg="email and remediate do not go together: mail the report of a drift run after")
    command = ["drift", *forks_argv(params)]
    if params["remediate"]:
        command += ["--remediate", "--verify-timeout", str(params["verify_timeout"])]
    elif module.check_mode:
        module.exit_json(changed=False, skipped=True,
                         msg="a drift report records a backup commit and writes a report: skipped in check mode "
                             "(remediate=true honours check mode)")
    if params["email"]:
        command.append("--email")
    command += ["--", *params["hosts"]] if params["hosts"] else []
    remediating = params["remediate"]
    run = run_job(module, command, check=remediating and module.check_mode, diff=remediating and module._diff)
    if remediating:
        result, failed = job_result(run.data, lambda data: remediate_result(data, module.check_mode), dict)
        if module._diff:
            result["diff"] = diff_entries(result.get("devices", []), "commands")
    else:
        result, failed = job_result(run.data, lambda data: drift_result(data, params["fail_on_drift"]), dict)
    finish(module, run, result, failed)


if __name__ == "__main__":
    main()
