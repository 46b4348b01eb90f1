#!/usr/bin/env bash
# Write the compose secrets deploy/compose.yaml mounts under /run/secrets:
#   deploy/secrets/postgres_password.txt       the postgres service's POSTGRES_PASSWORD_FILE
#   deploy/secrets/database_url.txt            INGEST_DATABASE_URL_FILE (with that password)
#   deploy/secrets/api_token.txt               INGEST_API_TOKEN_FILE, for the API's writes
#   deploy/secrets/grafana_admin_password.txt  Grafana's admin (--profile monitoring)
#
#   bash deploy/make-secrets.sh
#
# A file that exists is kept (so is the password the database was created with). For a
# deployment that still has POSTGRES_PASSWORD or INGEST_API_TOKEN in deploy/.env (before
# secrets), those values are reused: PostgreSQL reads its password file only when it
# creates the cluster. New values are random (32 bytes, URL-safe).
#
# The folder is private to its owner (0700); the files are 0644 because compose (outside
# swarm) bind-mounts them as they are and each container's own unprivileged user (10001,
# postgres, grafana) must read them.
set -euo pipefail
cd "$(dirname "$0")"
umask 077
mkdir -p secrets
chmod 700 secrets

from_env() {  # a KEY=value of deploy/.env, without running the file
  [ -f .env ] || return 0
  sed -n "s/^$1=//p" .env | tail -n 1
}
random() { python3 -c 'import secrets; print(secrets.token_urlsafe(32))'; }

write() {  # write NAME VALUE: deploy/secrets/NAME.txt, unless it exists
  local path="secrets/$1.txt"
  if [ -s "$path" ]; then
    echo "kept    deploy/$path"
    return
  fi
  printf '%s' "$2" > "$path"  # no line break: not every reader strips one
  chmod 644 "$path"
  echo "wrote   deploy/$path"
}

password=$(from_env POSTGRES_PASSWORD)
[ -s secrets/postgres_password.txt ] && password=$(head -n 1 secrets/postgres_password.txt)
[ -n "$password" ] || password=$(random)
user=$(from_env POSTGRES_USER); user=${user:-ingest}
db=$(from_env POSTGRES_DB); db=${db:-ingest}
url=$(python3 - "$user" "$password" "$db" <<'PY'
import sys
from urllib.parse import quote

user, password, db = sys.argv[1:]
print(f"postgresql+psycopg://{quote(user, safe='')}:{quote(password, safe='')}@postgres:5432/{db}")
PY
)
token=$(from_env INGEST_API_TOKEN)

write postgres_password "$password"
write database_url "$url"
write api_token "${token:-$(random)}"
write grafana_admin_password "$(random)"
if grep -qE '^(POSTGRES_PASSWORD|INGEST_API_TOKEN)=' .env 2>/dev/null; then
  echo "note: deploy/.env still holds POSTGRES_PASSWORD / INGEST_API_TOKEN; compose no" \
    "longer reads them there: delete those lines."
fi
