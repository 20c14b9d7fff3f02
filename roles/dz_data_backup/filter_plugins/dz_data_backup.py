"""Filters of roles/dz_data_backup: what becomes a snapshot, and restic's JSON output read back."""

from __future__ import annotations

import json
from typing import Any


def dump_file(engine: str, name: str) -> str:
    """The staging file name of a database dump (custom format for PostgreSQL, SQL for MariaDB).

    >>> dump_file("postgresql", "dzongkhag"), dump_file("mariadb", "dzongkhag")
    ('postgresql-dzongkhag.dump', 'mariadb-dzongkhag.sql')
    """
    return f"{engine}-{name}.{'dump' if engine == 'postgresql' else 'sql'}"


def item_tags(kind: str, engine: str = "", name: str = "", path: str = "") -> list[str]:
    """The restic tags of one backed-up thing: retention and restore find its snapshots by them.

    >>> item_tags("database", engine="mariadb", name="dzongkhag")
    ['dzops', 'kind=database', 'engine=mariadb', 'name=dzongkhag']
    >>> item_tags("path", path="/srv/share")
    ['dzops', 'kind=path', 'path=/srv/share']
    """
    if kind == "database":
        return ["dzops", "kind=database", f"engine={engine}", f"name={name}"]
    return ["dzops", "kind=path", f"path={path}"]


def items(databases: list[dict[str, Any]], paths: list[dict[str, Any]], staging: str) -> list[dict[str, Any]]:
    """One entry per snapshot a backup run makes: its tags, sources and excludes.

    >>> [i["label"] for i in items([{"name": "d", "engine": "postgresql"}], [{"path": "/srv/share"}], "/st")]
    ['postgresql d', '/srv/share']
    >>> items([{"name": "d", "engine": "postgresql"}], [], "/st")[0]["sources"]
    ['/st/postgresql-d.dump', '/st/postgresql-d.dump.sha256']
    """
    out = []
    for db in databases or []:
        dump = dump_file(db["engine"], db["name"])
        out.append({"kind": "database", "label": f"{db['engine']} {db['name']}",
                    "tags": item_tags("database", engine=db["engine"], name=db["name"]),
                    "sources": [f"{staging}/{dump}", f"{staging}/{dump}.sha256"], "excludes": [],
                    "files": [dump, f"{dump}.sha256"]})
    for item in paths or []:
        out.append({"kind": "path", "label": item["path"], "tags": item_tags("path", path=item["path"]),
                    "sources": [item["path"]], "excludes": list(item.get("exclude") or []), "files": []})
    return out


def repos(repositories: list[dict[str, Any]], etc: str, addresses: dict[str, str]) -> list[dict[str, Any]]:
    """restic's arguments for each repository: an SFTP one through the ssh_config alias setup writes
    (key, host key, timeouts), a local one by its path. `addresses`: repository server -> ansible_host.

    >>> r = repos([{"kind": "sftp", "host": "web1", "path": "/srv/r"}, {"kind": "local", "path": "/b"}],
    ...           "/etc/d", {"web1": "10.0.0.2"})
    >>> r[0]["url"], r[0]["args"]
    ('sftp:dzbackup@10.0.0.2:/srv/r', ['-r', 'sftp:dz-repo-web1:/srv/r', '-o', 'sftp.command=ssh -F /etc/d/ssh_config dz-repo-web1 -s sftp'])
    >>> r[1]["url"], r[1]["args"], r[1]["kind"]
    ('/b', ['-r', '/b'], 'local')
    """
    out = []
    for repo in repositories:
        if repo["kind"] == "sftp":
            user, alias = repo.get("user") or "dzbackup", f"dz-repo-{repo['host']}"
            out.append({"host": repo["host"], "kind": "sftp", "user": user, "path": repo["path"],
                        "ssh": ["ssh", "-F", f"{etc}/ssh_config", alias],
                        "url": f"sftp:{user}@{addresses[repo['host']]}:{repo['path']}",
                        "args": ["-r", f"sftp:{alias}:{repo['path']}",
                                 "-o", f"sftp.command=ssh -F {etc}/ssh_config {alias} -s sftp"]})
        else:
            out.append({"host": "", "kind": "local", "path": repo["path"], "url": repo["path"],
                        "args": ["-r", repo["path"]]})
    return out


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every JSON object of restic's --json output (status lines, then a summary); other lines ignored.

    >>> json_lines('{"message_type":"status"}\\nnot json\\n{"message_type":"summary","snapshot_id":"ab"}')
    [{'message_type': 'status'}, {'message_type': 'summary', 'snapshot_id': 'ab'}]
    """
    out = []
    for line in (text or "").splitlines():
        line = line.strip()
        if line.startswith(("{", "[")):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            out.extend(value if isinstance(value, list) else [value])
    return out


def restore_tags(what: dict[str, Any]) -> list[str]:
    """Tags of the snapshots a restore reads: a database's, or those of the backed-up path (`item`)
    that holds the path to restore.

    >>> restore_tags({"kind": "path", "item": "/srv/share", "path": "/srv/share/a.txt"})
    ['dzops', 'kind=path', 'path=/srv/share']
    """
    if what.get("kind") == "database":
        return item_tags("database", engine=what["engine"], name=what["name"])
    return item_tags("path", path=what.get("item") or what["path"])


def _item_of(tags: list[str]) -> tuple[str, str]:
    """(kind, name) of a snapshot from its dzops tags.

    >>> _item_of(["dzops", "kind=database", "engine=mariadb", "name=d"]), _item_of(["dzops", "kind=path", "path=/s"])
    (('database', 'mariadb d'), ('path', '/s'))
    """
    fields = dict(tag.split("=", 1) for tag in tags if "=" in tag)
    if fields.get("kind") == "database":
        return "database", f"{fields.get('engine', '?')} {fields.get('name', '?')}"
    return fields.get("kind", "?"), fields.get("path", "?")


def newest_ids(snapshots_json: str) -> list[str]:
    """The id of each item's newest snapshot (restic snapshots --json), in item order.

    >>> newest_ids('[{"id":"a1","time":"2026-01-01T00:00:00Z","tags":["dzops","kind=path","path=/s"]},'
    ...            '{"id":"b2","time":"2026-01-02T00:00:00Z","tags":["dzops","kind=path","path=/s"]}]')
    ['b2']
    """
    newest: dict[tuple[str, str], dict[str, Any]] = {}
    for snap in json.loads(snapshots_json or "[]") or []:
        key = _item_of(snap.get("tags") or [])
        if key not in newest or snap["time"] > newest[key]["time"]:
            newest[key] = snap
    return [snap["id"] for _, snap in sorted(newest.items())]


def snapshot_list(snapshots_json: str, stats_results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every snapshot as {id, time, kind, name, paths, newest, size (restore size of each item's newest)}."""
    sizes = {}
    for result in stats_results or []:
        stats = next(iter(json_lines(result.get("stdout", ""))), {})
        sizes[result.get("item")] = stats.get("total_size")
    newest = set(newest_ids(snapshots_json))
    out = []
    for snap in sorted(json.loads(snapshots_json or "[]") or [], key=lambda s: s["time"]):
        kind, name = _item_of(snap.get("tags") or [])
        out.append({"id": snap["id"][:8], "time": snap["time"], "kind": kind, "name": name,
                    "paths": snap.get("paths", []), "newest": snap["id"] in newest,
                    "size": sizes.get(snap["id"])})
    return out


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "dz_data_backup_items": items,
            "dz_data_backup_repos": repos,
            "dz_data_backup_json": json_lines,
            "dz_data_backup_tags": item_tags,
            "dz_data_backup_dump_file": dump_file,
            "dz_data_backup_restore_tags": restore_tags,
            "dz_data_backup_newest_ids": newest_ids,
            "dz_data_backup_snapshot_list": snapshot_list,
        }
