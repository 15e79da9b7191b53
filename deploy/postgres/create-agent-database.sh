#!/bin/sh
# Creates the agent's database (its notes and blob stores) on the stack's PostgreSQL,
# beside Temporal's, once: when it exists already this changes nothing. The workers
# create their tables in it on first use.
#
#   create-agent-database.sh NAME     (connection from PGHOST, PGPORT, PGUSER, PGPASSWORD)
set -eu
name="${1:?usage: create-agent-database.sh NAME}"
# \gexec runs the CREATE only when the SELECT returns it; %I quotes the name.
psql --no-psqlrc -d postgres -v ON_ERROR_STOP=1 -v name="$name" <<'SQL'
SELECT format('CREATE DATABASE %I', :'name')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'name')\gexec
SQL
echo "database $name is ready"
