"""Options every dzops job module takes: which Dzongkhag, which devices, the Vault, the lab."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  inventory:
    description:
      - The Dzongkhag's dzops inventory directory (the one holding C(hosts.yml), C(group_vars/) and C(host_vars/)).
      - One module call works on one Dzongkhag (the plays loop over C(dzops_inventories)). A folder of Dzongkhag
        inventories runs the job on each in turn, as C(dzops -i FOLDER) does; the result then has C(dzongkhags).
    type: path
    required: true
  limit:
    description:
      - Only these devices, as an Ansible host pattern over the dzops inventory (dzops' C(--limit)).
    type: str
  forks:
    description:
      - Devices worked on at once (dzops' C(--forks)); default the inventory's C(dzops_forks), else 10.
    type: int
  vault_password_file:
    description:
      - File holding the inventory's Vault password (dzops' C(--vault-password-file)).
      - Without it and without O(vault_password), dzops reads E(DZOPS_VAULT_PASSWORD_FILE), then
        E(ANSIBLE_VAULT_PASSWORD_FILE), then the inventory's demo password file.
    type: path
  vault_password:
    description:
      - The inventory's Vault password itself; written to a private 0600 file for the run only.
      - Never logged (C(no_log)).
    type: str
  lab:
    description:
      - Talk to the virtual lab with this prefix (dzops' C(--lab)) rather than to production devices.
    type: str
notes:
  - The module runs dzops on the Ansible controller, once per Dzongkhag; the devices are reached by dzops' own
    SSH fan-out, not by Ansible connections. Run it on C(localhost) with C(ansible_python_interpreter) set to the
    Python dzops is installed in (the plays in C(playbooks/job_*.yml) use C(ansible_playbook_python)).
  - It is the same code as the C(dzops) command line (one implementation, two front doors); every string in the
    result has passed dzops' egress filter, so no Vault value, password, PSK or key leaves it.
requirements:
  - dzops (the Python package) importable by the interpreter that runs the module.
"""
