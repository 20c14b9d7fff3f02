"""The sample Dzongkhag's data on its HQ file-and-database server.

Run inside the lab node as root once its database servers run (`Lab` does it for each server whose
`services` name postgresql or mariadb): a `dzongkhag` database in each engine, and the office file
share /srv/share. What `dzops data-backup` backs up there is this data, not something made for tests.
"""

from __future__ import annotations

DATABASE_SERVICES = ("postgresql", "mariadb")

# usage: sh -c SCRIPT sample-data SERVICE...
SCRIPT = r"""
set -eu

sql() {
    cat <<'SQL'
CREATE TABLE gewogs (id INTEGER PRIMARY KEY, name VARCHAR(64) NOT NULL, households INTEGER NOT NULL);
INSERT INTO gewogs VALUES (1, 'Barp', 412), (2, 'Chhubu', 389), (3, 'Dzomi', 301), (4, 'Goenshari', 221),
  (5, 'Guma', 655), (6, 'Kabisa', 478), (7, 'Lingmukha', 198), (8, 'Shenga Bjime', 264), (9, 'Talo', 402),
  (10, 'Toebesa', 517), (11, 'Toewang', 344);
CREATE TABLE staff (id INTEGER PRIMARY KEY, name VARCHAR(64) NOT NULL, post VARCHAR(64) NOT NULL, gewog_id INTEGER);
INSERT INTO staff VALUES (1, 'Karma Wangchuk', 'ICT Officer', NULL), (2, 'Pema Choden', 'ICT Technician', NULL),
  (3, 'Sonam Dorji', 'Gewog Administrative Officer', 9), (4, 'Dechen Wangmo', 'Gup', 5);
CREATE TABLE assets (tag VARCHAR(32) PRIMARY KEY, kind VARCHAR(32) NOT NULL, gewog_id INTEGER NOT NULL);
INSERT INTO assets VALUES ('PNK-RTR-0009', 'router', 9), ('PNK-AP-0009', 'access point', 9),
  ('PNK-RTR-0005', 'router', 5), ('PNK-SW-0005', 'switch', 5);
SQL
}

for service in "$@"; do
    case "$service" in
        postgresql)
            runuser -u postgres -- createdb dzongkhag
            sql | runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -d dzongkhag >/dev/null
            ;;
        mariadb)
            mariadb -e 'CREATE DATABASE dzongkhag'
            sql | mariadb dzongkhag
            ;;
    esac
done

install -d -m 0755 /srv/share /srv/share/minutes /srv/share/forms
printf 'Dzongkhag Tshogdu, minutes of the 12th session\n' > /srv/share/minutes/dt-12.txt
printf 'Leave application form, Punakha Dzongkhag Administration\n' > /srv/share/forms/leave.txt
head -c 262144 /dev/urandom > /srv/share/forms/scan-0001.pdf
"""
