"""Verified backups: pgBackRest sets and logical dumps that prove themselves by being restored.

runner      commands as the postgres user (runuser when running as root), with clear errors
database    a DB-API connection (psycopg2 on Debian hosts, psycopg 3 in tests)
manifest    the data manifest: per-table row counts and content checksums at one exact point
pgbackrest  pgBackRest's info, backup, verify and restore, and its configuration file
store       where manifests, dumps and verification records live: the repository (posix or S3)
scratch     a throwaway PostgreSQL instance with its own data directory and socket
verify      backup_verify's checks: structure, restore, amcheck, manifest, SQL assertions
logical     pg_dump -Fc of every database with its manifest, stored beside the physical backups
cli         `free4allweb-backup`, run by the systemd timers and playbooks/backup.yml

Plain Python (standard library plus a PostgreSQL driver); no Ansible imports. The backup role
installs this package on the database host as `f4a_backup` for the timers.
"""
