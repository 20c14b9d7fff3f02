#!/usr/bin/python3
"""Restore test of one database dump (run on the server by roles/dz_data_backup, action verify).

Loads DUMP into a scratch database SCRATCH, counts the rows of every table there and compares them
with the rows the dump itself holds (COPY blocks of pg_restore's SQL, one INSERT per row in
mariadb-dump --skip-extended-insert output), then drops the scratch database whatever happened.
Prints one JSON object: {"ok", "tables", "rows", "mismatches", "error"}.

usage: dz_verify_database.py postgresql|mariadb DUMP SCRATCH [POSTGRES_USER]
"""

import json
import re
import subprocess
import sys

COPY = re.compile(r"^COPY (\S+) \(.*\) FROM stdin;$")
INSERT = re.compile(r"^INSERT INTO `([^`]+)` VALUES ")


def run(argv, stdin=None):
    return subprocess.run(argv, stdin=stdin, capture_output=True, text=True, check=True).stdout


def rows_in_copy_sql(lines):
    """Rows per table in pg_restore's SQL output: the lines of each COPY ... FROM stdin block."""
    counts, table = {}, None
    for line in lines:
        line = line.rstrip("\n")
        if table is None:
            match = COPY.match(line)
            if match:
                table = match.group(1).replace('"', "")
                counts.setdefault(table, 0)
        elif line == "\\.":
            table = None
        else:
            counts[table] += 1
    return counts


def dump_rows_postgresql(dump):
    proc = subprocess.Popen(["pg_restore", "-f", "-", dump], stdout=subprocess.PIPE, text=True)
    counts = rows_in_copy_sql(proc.stdout)
    if proc.wait() != 0:
        raise RuntimeError("pg_restore could not read the dump")
    return counts


def dump_rows_mariadb(dump):
    counts = {}
    with open(dump, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith("CREATE TABLE `"):
                counts.setdefault(line.split("`")[1], 0)
            match = INSERT.match(line)
            if match:
                counts[match.group(1)] = counts.get(match.group(1), 0) + 1
    return counts


def load_postgresql(dump, scratch, user):
    run(["runuser", "-u", user, "--", "createdb", scratch])
    with open(dump, "rb") as handle:
        run(["runuser", "-u", user, "--", "pg_restore", "--no-owner", "--exit-on-error", "-d", scratch], stdin=handle)
    tables = run(["runuser", "-u", user, "--", "psql", "-Atq", "-d", scratch, "-c",
                  "SELECT schemaname || '.' || relname FROM pg_stat_user_tables ORDER BY 1"]).split()
    counts = {}
    for table in tables:
        schema, name = table.split(".", 1)
        quoted = ".".join('"{}"'.format(part.replace('"', '""')) for part in (schema, name))
        sql = f"SELECT count(*) FROM {quoted}"
        counts[table] = int(run(["runuser", "-u", user, "--", "psql", "-Atq", "-d", scratch, "-c", sql]).strip())
    return counts


def load_mariadb(dump, scratch):
    run(["mariadb", "-e", f"CREATE DATABASE `{scratch}`"])
    with open(dump, "rb") as handle:
        run(["mariadb", scratch], stdin=handle)
    tables = run(["mariadb", "-N", "-B", "-e",
                  f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{scratch}' "
                  "AND table_type = 'BASE TABLE' ORDER BY 1"]).split()
    return {t: int(run(["mariadb", "-N", "-B", "-e", f"SELECT count(*) FROM `{scratch}`.`{t}`"]).strip())
            for t in tables}


def drop(engine, scratch, user):
    if engine == "postgresql":
        subprocess.run(["runuser", "-u", user, "--", "dropdb", "--if-exists", scratch], capture_output=True)
    else:
        subprocess.run(["mariadb", "-e", f"DROP DATABASE IF EXISTS `{scratch}`"], capture_output=True)


def main(argv):
    engine, dump, scratch = argv[1], argv[2], argv[3]
    user = argv[4] if len(argv) > 4 else "postgres"
    result = {"ok": False, "tables": 0, "rows": 0, "mismatches": [], "error": None}
    drop(engine, scratch, user)  # a scratch left by an interrupted earlier run
    try:
        expected = dump_rows_postgresql(dump) if engine == "postgresql" else dump_rows_mariadb(dump)
        actual = load_postgresql(dump, scratch, user) if engine == "postgresql" else load_mariadb(dump, scratch)
        for table in sorted(set(expected) | set(actual)):
            if expected.get(table) != actual.get(table):
                result["mismatches"].append({"table": table, "dump": expected.get(table), "restored": actual.get(table)})
        result.update(tables=len(actual), rows=sum(actual.values()), ok=not result["mismatches"])
    except (subprocess.CalledProcessError, RuntimeError, OSError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        result["error"] = detail.strip().splitlines()[-1][:300] if detail.strip() else str(exc)
    finally:
        drop(engine, scratch, user)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
