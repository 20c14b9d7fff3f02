"""Routers, switches and access points of the lab: their files, daemons and login behaviour.

Every such node shares the host's root filesystem but has a private, writable `/etc` (overlayfs,
upper layer under the lab's state dir), a private `/run` and `/tmp` (tmpfs), a private `/home` and
`/var/log` (bind mounts of per-node dirs) and its own hostname. So users, sshd, FRR, lldpd and
hostapd configs are per node, exactly where a real Debian/FRR box keeps them. The daemons are the
host's binaries started inside the node; they need no `-N` pathspace.

Router (kind "router"): FRR zebra, staticd, ospfd and watchfrr, sshd, lldpd.
  The login user's sessions go through `ROUTER_SSH_SESSION` (sshd `ForceCommand`):
  - interactive pty, no command: `vtysh`, prompt `<hostname># ` (netmiko `cisco_ios` works:
    `send_command`, `send_config_set`, `save_config` = `write mem`, served by watchfrr);
  - exec channel `ssh user@r 'show version'`: `vtysh -c "<command>"`;
  - exec channel `frr-reload ARGS...` (also accepted: `sudo frr-reload ARGS`,
    `[sudo] /usr/lib/frr/frr-reload.py ARGS`): runs `sudo -n /usr/lib/frr/frr-reload.py ARGS` in the
    user's home directory. Words are split on blanks, never interpreted by a shell; sudoers allows
    the login user exactly this one program as root, without a password;
  - exec channel `ping ADDRESS`: two echo requests, exit 0 if answered (for link verification);
  - exec channel `lldpcli show ...` and `ip -j addr|link|route show`: read-only facts for discovery;
  - the `sftp` subsystem: the normal sftp-server, to upload candidate configs into the home dir.
  - exec channel `account list|present|absent ARGS` (also `sudo account ...`): runs
    `sudo -n /etc/dzops/account ARGS` (`ROUTER_ACCOUNT_HELPER`), the one other root program the
    login user may run. It manages staff accounts only (uid 1000-59999, never the login user):
      `account list` -> one line per staff account: `login:uid:access:locked:full name`;
      `account present LOGIN full|readonly YYYY-MM-DD|never FULL NAME` with the authorized_keys on
        stdin (replaced as a whole; each line checked by ssh-keygen) -> `created|updated|unchanged LOGIN`;
      `account absent LOGIN` -> kills the user's sessions, deletes account and home (`userdel -f -r`:
        a router home holds nothing but .ssh) -> `removed LOGIN` or `absent LOGIN` if not there.
    This is what an FRR box's admin does with sudo from a shell, narrowed to one audited program.
  Staff accounts (made by `account present`) are local Linux accounts whose login shell is the CLI,
  as on FRR/Cumulus boxes; sshd's `ForceCommand` applies to the login user only (`Match User`):
  - `full`: login shell `/usr/bin/vtysh`, groups frr + frrvty (the whole CLI, configure included);
  - `readonly`: FRR's vtysh has no privilege levels, so the login shell is `ROUTER_RO_SHELL`, a
    prompt `<hostname>> ` that accepts only `show ...` (anything else: `% Not permitted`), each run
    as user frr through sudo by `ROUTER_RO_SHOW` (one line of plain words starting with `show`,
    because vtysh would split `-c` on newlines). Read-only users are in group `vtysh-ro`, not in
    frr/frrvty, so they cannot reach the daemons' sockets themselves.
  sshd admits members of frrvty and vtysh-ro only (`AllowGroups`).
  Config replace by a driver therefore is:
    1. SFTP-put the whole intended config to e.g. `candidate.conf` (relative to the home dir);
    2. `frr-reload --test candidate.conf` -> stdout lists the lines to add/delete (the diff);
    3. `frr-reload --reload --stdout candidate.conf` -> applies exactly that delta (exit 0 = ok);
    4. `write memory` (a vtysh command on the exec channel) to persist it;
    rollback = reload a previously saved `show running-config` the same way.
  As root at the node's console (`Lab.exec(node, [...])`) the same is
  `/usr/lib/frr/frr-reload.py --test /tmp/cand.conf` after writing the file, e.g. with
  `Lab.exec(node, ["sh", "-c", "cat > /tmp/cand.conf"], input=text)`.

Switch (kind "switch", Cumulus-like): VLAN-aware bridge `br0` (vlan_filtering 1) with every data
  port (swpN) enslaved, FRR zebra + watchfrr, sshd, lldpd. The login user gets bash and
  passwordless `sudo` (like Cumulus' admin account), e.g. `sudo bridge vlan add dev swp2 vid 20`.

Access point (kind "ap"): VLAN-aware `br0` with every data interface enslaved (`eth0` uplink and
  any `wlanN` listed in the node's interfaces, which the lab creates as stand-ins for radios),
  sshd, lldpd, and Debian's hostapd with `driver=none` (no radio exists on this kernel).
  Factory state (empty `hostapd_config`): hostapd not running. The login user gets bash and
  passwordless sudo.
  hostapd facts that shape the provisioning procedure (measured with hostapd 2.10):
  - `driver=none` cannot create secondary BSSes: a `bss=` section fails with "Failed to add BSS".
    One hostapd process can however run several interfaces, one config file each. So each SSID is
    one file with its own `interface=wlanN` (the lab's radio stand-in), `bridge=br0`, `ssid=`,
    WPA settings and `ctrl_interface=/run/hostapd`; the list of files is Debian's
    `DAEMON_CONF="..."` in `/etc/default/hostapd` (default: `/etc/hostapd/hostapd.conf` only).
  - VLAN per SSID: hostapd.conf cannot express a port VLAN with a VLAN-aware bridge (and
    driver=none does not touch the bridge). The SSID's interface is already a `br0` port; its
    VLAN is set with `sudo bridge vlan add dev wlanN vid VID pvid untagged` (and
    `sudo bridge vlan add dev eth0 vid VID` on the tagged uplink) - as on an OpenWrt/Linux AP.
  - hostapd has no config-check mode: a bad file is reported when it starts (it prints
    `Line N: <error>` and exits 1, e.g. for a 5-character `wpa_passphrase`).
  The driver's procedure over SSH is therefore:
    1. `sudo tee /etc/hostapd/<file>.conf >/dev/null` (config on stdin) for each SSID, and
       `sudo tee /etc/default/hostapd` with
       `DAEMON_CONF="/etc/hostapd/hostapd.conf /etc/hostapd/wlan1.conf"` on stdin;
    2. stop: `sudo start-stop-daemon --stop --quiet --retry 5 --oknodo --pidfile /run/hostapd.pid
       --exec /usr/sbin/hostapd` (waits until the ctrl sockets are gone);
    3. start = validate: `sudo sh -c '. /etc/default/hostapd; exec hostapd -B -P /run/hostapd.pid
       $DAEMON_CONF'` - exit 1 plus `Line N:` on stdout means the config was refused: restore the
       previous files and start again;
    4. check: `sudo hostapd_cli -p /run/hostapd -i wlanN status` shows `state=ENABLED`;
       `... get_config` shows the SSID and key management.
  `Lab.start_daemon(node, "hostapd")` runs exactly step 3.
"""

from __future__ import annotations

import logging
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from dzops.exceptions import LabError
from dzops.lab import netns
from dzops.lab.spec import LabNode

log = logging.getLogger(__name__)

LOGIN_UID = 2001  # same in every node; far from the host's users (1000+) and system ids
LLDP_SOCKET = "/run/lldpd.socket"  # inside the node: lldpcli's default, so plain `lldpcli` works
HOSTAPD_CTRL_DIR = "/run/hostapd"
HOSTAPD_PIDFILE = "/run/hostapd.pid"
STANDIN_SUFFIX = "_lp"  # peer end of a veth that stands in for an unlinked port; LLDP ignores it
ROUTER_SSH_SESSION = "/etc/dzops/ssh-session"
ROUTER_ACCOUNT_HELPER = "/etc/dzops/account"  # root, through sudo: staff account management
ROUTER_RO_SHELL = "/etc/dzops/vtysh-ro"  # login shell of read-only staff
ROUTER_RO_SHOW = "/etc/dzops/vtysh-show"  # run as frr through sudo: one `show` command
ROUTER_RO_GROUP = "vtysh-ro"
FRR_DAEMONS = ("zebra", "staticd", "ospfd")
FRR_DIR = "/usr/lib/frr"

# The holder: PID of `unshare` inside the node's netns; its mount/UTS namespaces are the node's.
# It prints "ready" once the node's private mounts exist, then only sleeps.
HOLDER_SCRIPT = r"""
set -eu
name=$1 upper=$2 work=$3 home=$4 logdir=$5 forward=$6
echo "$name" > /proc/sys/kernel/hostname
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$upper,workdir=$work" /etc
mount -t tmpfs -o nosuid,nodev,mode=0755,size=32m tmpfs /run
mount --bind "$home" /home
mount --bind "$logdir" /var/log
# Last: the state dir (source of the mounts above) may itself live under /tmp.
mount -t tmpfs -o nosuid,nodev,mode=1777,size=64m tmpfs /tmp
install -d -o frr -g frr -m 0755 /run/frr
install -d -m 0755 /run/sshd /run/lldpd /run/hostapd
install -d -m 1777 /run/lock
ip link set lo up
echo "$forward" > /proc/sys/net/ipv4/ip_forward
# 20 by default: an OSPF hub with more interfaces would silently stay in Init on the rest.
echo 4096 > /proc/sys/net/ipv4/igmp_max_memberships
echo ready
exec sleep infinity
"""

_ROUTER_SSH_SESSION_SCRIPT = r"""#!/bin/sh
# sshd ForceCommand of the router login user: the device CLI is vtysh (see dzops.lab.routers).
set -f  # the command's words are split on blanks below; they must never be globbed
cmd=${SSH_ORIGINAL_COMMAND:-}
[ -n "$cmd" ] || exec /usr/bin/vtysh
set -- $cmd
sudo=
if [ "$1" = sudo ]; then sudo=1; shift; fi
case "${1:-}" in
    frr-reload|frr-reload.py|/usr/lib/frr/frr-reload.py)
        shift
        exec sudo -n /usr/lib/frr/frr-reload.py "$@" ;;
    account)
        # Staff accounts (see dzops.lab.routers): one root-owned program, its words as arguments.
        shift
        exec sudo -n /etc/dzops/account "$@" ;;
    ping)
        # IOS-like `ping ADDRESS`: bounded (vtysh's own ping never stops on an exec channel).
        [ $# -eq 2 ] || { echo "% usage: ping ADDRESS" >&2; exit 1; }
        case "$2" in -*|*[!0-9a-fA-F.:]*) echo "% bad address: $2" >&2; exit 1 ;; esac
        exec /bin/ping -n -q -c 2 -i 0.2 -W 1 "$2" ;;
    lldpcli)
        # Read-only LLDP, as on any Linux/FRR box: `lldpcli show ...` only, never `configure`.
        [ "${2:-}" = show ] || { echo "% only 'lldpcli show ...' is allowed" >&2; exit 1; }
        shift
        exec /usr/sbin/lldpcli "$@" ;;
    ip)
        # Read-only interface facts for discovery (`ip -j addr show`, `ip -j link show`).
        case "$*" in "ip -j addr show"|"ip -j link show"|"ip -j route show") exec /sbin/ip -j "$3" show ;; esac
        echo "% only 'ip -j addr|link|route show' is allowed" >&2; exit 1 ;;
    /usr/lib/openssh/sftp-server|internal-sftp)
        [ -z "$sudo" ] && exec /usr/lib/openssh/sftp-server ;;
esac
if [ -n "$sudo" ]; then
    echo "% only 'sudo frr-reload ARGS' and 'sudo account ARGS' are allowed on this router" >&2
    exit 1
fi
exec /usr/bin/vtysh -c "$cmd"
"""


_ROUTER_ACCOUNT_SCRIPT = r"""#!/bin/sh
# Staff accounts on this router (see dzops.lab.routers); run as root through sudo by the login user.
set -eu
PATH=/usr/sbin:/usr/bin:/sbin:/bin
PROTECTED=@LOGIN@
die() { echo "% $*" >&2; exit 1; }
valid_login() { case "$1" in ""|-*|*[!a-z0-9_-]*) return 1 ;; esac; [ ${#1} -le 32 ]; }
staff() {
    uid=$(id -u "$1" 2>/dev/null) || return 1
    [ "$uid" -ge 1000 ] && [ "$uid" -le 59999 ] && [ "$1" != "$PROTECTED" ]
}
fingerprint() {
    getent passwd "$1" || true; id -Gn "$1" 2>/dev/null || true
    getent shadow "$1" | cut -d: -f2,8 || true
    home=$(getent passwd "$1" | cut -d: -f6)
    [ -n "$home" ] && cat "$home/.ssh/authorized_keys" 2>/dev/null || true
}
cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
list)
    getent passwd | while IFS=: read -r login _ uid _ gecos _ shell; do
        [ "$uid" -ge 1000 ] && [ "$uid" -le 59999 ] && [ "$login" != "$PROTECTED" ] || continue
        case "$shell" in /usr/bin/vtysh) access=full ;; @RO_SHELL@) access=readonly ;; *) access=other ;; esac
        case "$(getent shadow "$login" | cut -d: -f2)" in '!'*) locked=yes ;; *) locked=no ;; esac
        echo "$login:$uid:$access:$locked:$gecos"
    done ;;
present)
    [ $# -ge 3 ] || die "usage: account present LOGIN full|readonly YYYY-MM-DD|never [FULL NAME]"
    login=$1 access=$2 expires=$3
    shift 3
    gecos="$*"
    valid_login "$login" || die "bad login '$login'"
    case "$gecos" in *[:,]*) die "bad full name (':' and ',' are field separators)" ;; esac
    case "$access" in
        full) shell=/usr/bin/vtysh groups=frr,frrvty ;;
        readonly) shell=@RO_SHELL@ groups=@RO_GROUP@ ;;
        *) die "access must be full or readonly" ;;
    esac
    case "$expires" in never) expires=-1 ;; [0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]) ;; *) die "bad expiry '$expires'" ;; esac
    keys=$(mktemp)
    trap 'rm -f "$keys" "$keys.1"' EXIT
    cat > "$keys"
    [ -s "$keys" ] || die "no SSH public key on stdin"
    while IFS= read -r key; do
        [ -n "$key" ] || continue
        printf '%s\n' "$key" > "$keys.1"
        ssh-keygen -l -f "$keys.1" >/dev/null 2>&1 || die "bad SSH public key for $login"
    done < "$keys"
    getent group @RO_GROUP@ >/dev/null || groupadd --system @RO_GROUP@
    if id "$login" >/dev/null 2>&1; then
        staff "$login" || die "$login is not a staff account: refusing to touch it"
        before=$(fingerprint "$login")
        usermod -s "$shell" -G "$groups" -c "$gecos" "$login"
        action=updated
    else
        before=
        useradd -m -s "$shell" -G "$groups" -c "$gecos" "$login"
        action=created
    fi
    chage -E "$expires" "$login"
    # No password, but not locked: sshd without PAM refuses key logins of '!' accounts.
    usermod -p '*' "$login"
    home=$(getent passwd "$login" | cut -d: -f6)
    install -d -m 0700 -o "$login" -g "$login" "$home/.ssh"
    install -m 0600 -o "$login" -g "$login" "$keys" "$home/.ssh/authorized_keys"
    [ "$action" = updated ] && [ "$before" = "$(fingerprint "$login")" ] && action=unchanged
    echo "$action $login" ;;
absent)
    [ $# -eq 1 ] || die "usage: account absent LOGIN"
    login=$1
    valid_login "$login" || die "bad login '$login'"
    id "$login" >/dev/null 2>&1 || { echo "absent $login"; exit 0; }
    staff "$login" || die "$login is not a staff account: refusing to touch it"
    userdel -f -r "$login" 2>/dev/null || userdel -f "$login"
    echo "removed $login" ;;
*)
    die "usage: account list | present LOGIN full|readonly EXPIRY [NAME] | absent LOGIN" ;;
esac
"""

_ROUTER_RO_SHELL_SCRIPT = r"""#!/bin/sh
# Login shell of read-only staff on this router: `show ...` only (see dzops.lab.routers).
set -f
show() { sudo -n -u frr @RO_SHOW@ "$*"; }
refuse() { echo "% Not permitted: read-only account ('show ...' only)"; }
if [ "${1:-}" = -c ]; then
    set -- ${2:-}
    case "${1:-}" in show) show "$@"; exit $? ;; esac
    refuse >&2
    exit 1
fi
host=$(hostname)
while printf '%s> ' "$host" && IFS= read -r line; do
    set -- $line
    case "${1:-}" in
        "") ;;
        show) show "$@" ;;
        exit|quit|logout) exit 0 ;;
        terminal) ;;  # `terminal length 0` from CLI clients: nothing to page here
        *) refuse ;;
    esac
done
echo
"""

_ROUTER_RO_SHOW_SCRIPT = r"""#!/bin/sh
# One vtysh `show` command for a read-only account, run as user frr (see dzops.lab.routers).
set -f
[ $# -eq 1 ] || { echo "% one command expected" >&2; exit 1; }
# vtysh splits -c on newlines: one line of plain words only, and it must be a show command.
case "$1" in *[!A-Za-z0-9\ ./:_-]*) echo "% Not permitted: unexpected characters" >&2; exit 1 ;; esac
case "$1" in show|show\ *) exec /usr/bin/vtysh -c "$1" ;; esac
echo "% Not permitted: read-only account ('show ...' only)" >&2
exit 1
"""


def router_account_scripts(node: LabNode) -> dict[str, str]:
    """The staff-account programs of a router node, path (under /etc) -> text."""
    subst = {"@LOGIN@": node.login_user, "@RO_SHELL@": ROUTER_RO_SHELL, "@RO_GROUP@": ROUTER_RO_GROUP,
             "@RO_SHOW@": ROUTER_RO_SHOW}
    out = {}
    for path, text in ((ROUTER_ACCOUNT_HELPER, _ROUTER_ACCOUNT_SCRIPT), (ROUTER_RO_SHELL, _ROUTER_RO_SHELL_SCRIPT),
                       (ROUTER_RO_SHOW, _ROUTER_RO_SHOW_SCRIPT)):
        for key, value in subst.items():
            text = text.replace(key, value)
        out[path.removeprefix("/etc/")] = text
    return out


@dataclass(frozen=True)
class Daemon:
    name: str
    argv: tuple[str, ...]  # run inside the node as root; the program daemonizes itself
    pidfile: str  # inside the node
    frr: bool = False  # its config comes from frr.conf through `vtysh -b`


def daemons_for(node: LabNode) -> list[Daemon]:
    """The daemons of a node, in start order."""
    sshd = Daemon(
        "sshd", ("/usr/sbin/sshd", "-f", "/etc/ssh/sshd_config", "-E", "/var/log/sshd.log"), "/run/sshd.pid"
    )
    lldpd = Daemon("lldpd", ("/usr/sbin/lldpd", "-u", LLDP_SOCKET), "/run/lldpd.pid")
    if node.kind == "router":
        frr = list(FRR_DAEMONS)
    elif node.kind == "switch":
        frr = ["zebra"]
    else:
        frr = []
    result = [
        # -P 0: no vty TCP port; vtysh and watchfrr use the unix sockets in /run/frr.
        Daemon(
            d,
            (f"{FRR_DIR}/{d}", "-d", "-P", "0", *(["-s", "90000000"] if d == "zebra" else [])),
            f"/run/frr/{d}.pid",
            frr=True,
        )
        for d in frr
    ]
    if frr:
        # --dry: watchfrr serves `write memory` but never restarts a daemon, so that
        # Lab.stop_daemon (fault injection) really leaves it stopped.
        result.append(
            Daemon("watchfrr", (f"{FRR_DIR}/watchfrr", "-d", "--dry", *frr), "/run/frr/watchfrr.pid")
        )
    result += [sshd, lldpd]
    if node.kind == "ap":
        result.append(Daemon("hostapd", ("/bin/sh", "-c", _HOSTAPD_START), HOSTAPD_PIDFILE))
    return result


_HOSTAPD_START = (
    "[ -r /etc/default/hostapd ] && . /etc/default/hostapd; "
    "exec /usr/sbin/hostapd -B -P /run/hostapd.pid ${DAEMON_CONF:-/etc/hostapd/hostapd.conf}"
)


def expected_daemons(node: LabNode) -> list[str]:
    """Daemons that must run after `up()`: an AP in factory state has no hostapd yet."""
    return [d.name for d in daemons_for(node) if not (d.name == "hostapd" and not node.hostapd_config)]


def daemon_by_name(node: LabNode, name: str) -> Daemon:
    for daemon in daemons_for(node):
        if daemon.name == name:
            return daemon
    known = ", ".join(d.name for d in daemons_for(node))
    raise LabError(f"{node.name}: no daemon {name!r} on a {node.kind} (known: {known})")


# --- the node's private /etc, written into the overlay's upper dir before the holder mounts it ----


class EtcWriter:
    """Writes files into an overlay upper dir, giving new directories the host /etc's owner/mode.

    A directory created in the upper layer hides the lower one's attributes, so e.g. /etc/frr
    must stay frr:frr there or FRR cannot write its config.
    """

    def __init__(self, upper: Path) -> None:
        self.upper = upper

    def _mkdirs(self, rel: Path) -> None:
        for depth in range(1, len(rel.parts) + 1):
            sub = Path(*rel.parts[:depth])
            target = self.upper / sub
            if target.is_dir():
                continue
            target.mkdir()
            host = Path("/etc") / sub
            if host.is_dir():
                st = host.stat()
                target.chmod(stat.S_IMODE(st.st_mode))
                shutil.chown(target, st.st_uid, st.st_gid)

    def write(
        self, rel: str, text: str, mode: int = 0o644, owner: str | int = 0, group: str | int = 0
    ) -> None:
        path = self.upper / rel
        self._mkdirs(Path(rel).parent)
        path.write_text(text)
        path.chmod(mode)
        shutil.chown(path, owner, group)

    def copy(self, rel: str, src: Path, mode: int, owner: str | int = 0, group: str | int = 0) -> None:
        self.write(rel, src.read_text(), mode, owner, group)


def hash_password(password: str, what: str) -> str:
    """SHA-512 crypt hash; the password travels on stdin only."""
    proc = netns.run(["openssl", "passwd", "-6", "-stdin"], input=password + "\n", what=what)
    return proc.stdout.strip()


def _with_user_lines(path: Path, user: str, new_line: str, groups: dict[str, int]) -> str:
    """Host file (passwd/shadow/group/gshadow) with the user's line added and member lists extended.

    groups: group name -> index of its member-list field in this file.
    """
    out: list[str] = []
    for line in path.read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            raise LabError(f"login user {user!r} already exists on the host ({path}); choose another name")
        if fields[0] in groups:
            idx = groups[fields[0]]
            members = [m for m in fields[idx].split(",") if m]
            fields[idx] = ",".join([*members, user])
            line = ":".join(fields)
        out.append(line)
    out.append(new_line)
    return "\n".join(out) + "\n"


def write_users(etc: EtcWriter, node: LabNode, password_hash: str) -> None:
    user, uid = node.login_user, LOGIN_UID
    extra = ["frr", "frrvty"] if node.kind in ("router", "switch") else []
    if node.kind == "router":
        # Debian ships lldpcli setuid _lldpd and executable by group adm only: the router login
        # needs adm for its read-only `lldpcli show ...` (discovery); it has no sudo for it.
        extra.append("adm")
    etc.write(
        "passwd",
        _with_user_lines(Path("/etc/passwd"), user, f"{user}:x:{uid}:{uid}::/home/{user}:/bin/bash", {}),
    )
    etc.write(
        "shadow",
        _with_user_lines(Path("/etc/shadow"), user, f"{user}:{password_hash}:19000:0:99999:7:::", {}),
        0o640,
        0,
        "shadow",
    )
    etc.write("group", _with_user_lines(Path("/etc/group"), user, f"{user}:x:{uid}:", {g: 3 for g in extra}))
    etc.write(
        "gshadow",
        _with_user_lines(Path("/etc/gshadow"), user, f"{user}:!::", {g: 3 for g in extra}),
        0o640,
        0,
        "shadow",
    )


def make_home(home_root: Path, user: str) -> None:
    home = home_root / user
    home.mkdir(parents=True, exist_ok=True)
    skel = Path("/etc/skel")
    for item in skel.iterdir() if skel.is_dir() else []:
        if item.is_file():
            shutil.copy2(item, home / item.name)
    for path in (home, *home.iterdir()):
        shutil.chown(path, LOGIN_UID, LOGIN_UID)
    home.chmod(0o750)


def sshd_config(node: LabNode) -> str:
    ip = node.mgmt_address.split("/")[0]
    lines = [
        "# dzops lab node sshd: management address only, password login for the node's user",
        "Port 22",
        f"ListenAddress {ip}",
        "HostKey /etc/ssh/ssh_host_ed25519_key",
        "PidFile /run/sshd.pid",
        # Without PAM sshd checks /etc/shadow itself: no pam_systemd/loginuid surprises in a netns.
        "UsePAM no",
        "PasswordAuthentication yes",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin no",
        # Routers also admit staff accounts (frrvty: full CLI, vtysh-ro: show only).
        f"AllowGroups frrvty {ROUTER_RO_GROUP}" if node.kind == "router" else f"AllowUsers {node.login_user}",
        "PrintMotd no",
        "PrintLastLog no",
        "UseDNS no",
        # The fan-out runs ~20 parallel sessions per second: don't let sshd drop early connections.
        "MaxStartups 200:30:400",
        "X11Forwarding no",
        "AcceptEnv LANG LC_*",
        "Subsystem sftp /usr/lib/openssh/sftp-server",
    ]
    if node.kind == "router":
        # Staff accounts' login shell is the CLI itself; only the login user needs the wrapper.
        lines += [f"Match User {node.login_user}", f"    ForceCommand {ROUTER_SSH_SESSION}"]
    return "\n".join(lines) + "\n"


def sudoers(node: LabNode) -> str:
    if node.kind == "router":
        return (f"{node.login_user} ALL=(root) NOPASSWD: {FRR_DIR}/frr-reload.py, {ROUTER_ACCOUNT_HELPER}\n"
                f"%{ROUTER_RO_GROUP} ALL=(frr) NOPASSWD: {ROUTER_RO_SHOW}\n")
    return f"{node.login_user} ALL=(ALL:ALL) NOPASSWD: ALL\n"


def lldpd_conf(node: LabNode) -> str:
    return (
        "configure lldp portidsubtype ifname\n"
        f"configure system hostname {node.name}\n"
        # Stand-in peers of unlinked ports would otherwise make a node its own neighbour.
        f"configure system interface pattern *,!*{STANDIN_SUFFIX}\n"
    )


def vtysh_conf(node: LabNode) -> str:
    return f"service integrated-vtysh-config\nhostname {node.name}\n"


def frr_daemons_file(node: LabNode) -> str:
    """/etc/frr/daemons as Debian's frrinit.sh would read it, so the node looks like a real FRR box."""
    wanted = {"router": FRR_DAEMONS, "switch": ("zebra",)}.get(node.kind, ())
    out: list[str] = []
    for line in Path("/etc/frr/daemons").read_text().splitlines():
        key = line.split("=", 1)[0]
        if "=" in line and line.split("=", 1)[1] in ("yes", "no") and not line.startswith("#"):
            if key not in ("vtysh_enable",):
                line = f"{key}={'yes' if key in wanted else 'no'}"
        out.append(line)
    return "\n".join(out) + "\n"


def write_node_etc(etc: EtcWriter, node: LabNode, host_key: Path, password_hash: str) -> None:
    """Everything of the node's /etc that differs from the host's."""
    etc.write("hostname", f"{node.name}\n")
    # sudo resolves its own hostname; without this it waits for DNS that does not exist here.
    etc.write("hosts", f"127.0.0.1\tlocalhost\n127.0.1.1\t{node.name}\n::1\tlocalhost ip6-localhost\n")
    write_users(etc, node, password_hash)
    etc.copy("ssh/ssh_host_ed25519_key", host_key, 0o600)
    etc.copy("ssh/ssh_host_ed25519_key.pub", host_key.with_suffix(".pub"), 0o644)
    etc.write("ssh/sshd_config", sshd_config(node))
    etc.write("sudoers.d/dzops-lab", sudoers(node), 0o440)
    etc.write("lldpd.d/dzops-lab.conf", lldpd_conf(node))
    if node.kind in ("router", "switch"):
        frr_conf = node.frr_config or f"hostname {node.name}\n"
        if "|" in "\n".join(ln for ln in frr_conf.splitlines() if "description" in ln):
            raise LabError(f"{node.name}: '|' in an interface description breaks `vtysh -b`")
        etc.write("frr/frr.conf", frr_conf, 0o640, "frr", "frr")
        etc.write("frr/vtysh.conf", vtysh_conf(node), 0o640, "frr", "frr")
        etc.write("frr/daemons", frr_daemons_file(node), 0o640, "frr", "frr")
    if node.kind == "router":
        etc.write(ROUTER_SSH_SESSION.removeprefix("/etc/"), _ROUTER_SSH_SESSION_SCRIPT, 0o755)
        for rel, text in router_account_scripts(node).items():
            etc.write(rel, text, 0o755)
    if node.kind == "ap" and node.hostapd_config:
        etc.write("hostapd/hostapd.conf", node.hostapd_config, 0o600)


def standin_peer(ifname: str) -> str:
    return ifname[: netns.IFNAMSIZ - len(STANDIN_SUFFIX)] + STANDIN_SUFFIX


def start_daemon_argv(daemon: Daemon) -> list[str]:
    return list(daemon.argv)


def load_frr_config(holder_pid: int, node_name: str, daemon: str | None = None) -> None:
    """`vtysh -b`: push /etc/frr/frr.conf into the running daemons (all, or just the one restarted)."""
    argv = ["/usr/bin/vtysh", "-b", *(["-d", daemon] if daemon else [])]
    proc = netns.run(netns.nsenter_argv(holder_pid, argv), what=f"{node_name}: load frr.conf", check=False)
    if proc.returncode != 0:
        detail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-6:])
        raise LabError(f"{node_name}: vtysh -b rejected frr.conf (exit {proc.returncode}): {detail}")


def hostapd_running_config(holder_pid: int, iface: str) -> subprocess.CompletedProcess[str]:
    argv = ["hostapd_cli", "-p", HOSTAPD_CTRL_DIR, "-i", iface, "get_config"]
    return netns.run(netns.nsenter_argv(holder_pid, argv), check=False)
