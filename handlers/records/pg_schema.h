// The record store's SQL for PostgreSQL (pg_store.h): the schema, created
// on first start, its version, and the statements. Every value is a bound
// parameter ($1...), never spliced into the text.
#pragma once

namespace uvh::pg_sql {

// The schema version this uvhttpd writes and understands. A later change
// of the tables bumps it and migrates from the number it finds.
inline constexpr int kSchemaVersion = 1;

// Run once per process, on its first connection, in one transaction under
// an advisory lock, so instances starting together create it once.
//
// uvhttpd_records: one row per record. seq (an identity column) is the
// creation order GET /database.txt lists in, like the lines of the file
// store; id is the key (unique: two instances racing for one id end in one
// row, one 201 and one 409); fields is the record's fields exactly as the
// file store's line holds them after the id (form-encoded, record_format.h).
// uvhttpd_records_auto numbers records posted without an id; it is pushed
// past any numeric id posted or put explicitly, so numbers keep growing as
// in the file store (the file store's "largest number + 1"), except by the
// largest number itself: then, as in the file store, numbering goes on
// from the free numbers (the sequence cycles and skips taken ids).
inline constexpr const char* kSetup = R"SQL(
SET synchronous_commit TO on;
SET client_min_messages TO warning;
BEGIN;
SELECT pg_advisory_xact_lock(7532815469012844);
CREATE TABLE IF NOT EXISTS uvhttpd_schema (version integer NOT NULL);
INSERT INTO uvhttpd_schema (version) SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM uvhttpd_schema);
-- Only a schema of the version this uvhttpd knows is created or touched:
-- a newer one (migrated by a later release) is left alone and refused.
DO $setup$
BEGIN
    IF (SELECT max(version) FROM uvhttpd_schema) IS DISTINCT FROM 1 THEN
        RETURN;
    END IF;
    CREATE TABLE IF NOT EXISTS uvhttpd_records (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id text NOT NULL UNIQUE CHECK (id ~ '^[A-Za-z0-9._-]{1,64}$' AND id NOT IN ('.', '..')),
        fields text NOT NULL
    );
    CREATE SEQUENCE IF NOT EXISTS uvhttpd_records_auto MINVALUE 1 MAXVALUE 999999999999999999 CYCLE;
    CREATE OR REPLACE FUNCTION uvhttpd_records_bump(p_id text) RETURNS void LANGUAGE plpgsql AS $f$
    BEGIN
        IF p_id ~ '^[0-9]+$' AND length(ltrim(p_id, '0')) BETWEEN 1 AND 18
           AND p_id::bigint < 999999999999999999 THEN
            PERFORM setval('uvhttpd_records_auto', p_id::bigint)
               FROM uvhttpd_records_auto a WHERE p_id::bigint > a.last_value;
        END IF;
    END $f$;
    CREATE OR REPLACE FUNCTION uvhttpd_records_append(p_lines text)
    RETURNS TABLE (o_n integer, o_id text) LANGUAGE plpgsql AS $f$
    DECLARE
        v_line text;
        v_id text;
        v_fields text;
        v_got text;
    BEGIN
        o_n := 0;
        FOREACH v_line IN ARRAY string_to_array(p_lines, E'\n') LOOP
            o_n := o_n + 1;
            v_id := split_part(v_line, ' ', 1);
            v_fields := substr(v_line, length(v_id) + 2);
            IF v_id <> '' THEN
                v_got := NULL;
                INSERT INTO uvhttpd_records AS r (id, fields) VALUES (v_id, v_fields)
                    ON CONFLICT DO NOTHING RETURNING r.id INTO v_got;
                IF v_got IS NOT NULL THEN
                    PERFORM uvhttpd_records_bump(v_got);
                END IF;
            ELSE
                LOOP
                    v_got := NULL;
                    v_id := nextval('uvhttpd_records_auto')::text;
                    INSERT INTO uvhttpd_records AS r (id, fields) VALUES (v_id, v_fields)
                        ON CONFLICT DO NOTHING RETURNING r.id INTO v_got;
                    EXIT WHEN v_got IS NOT NULL;
                END LOOP;
            END IF;
            o_id := v_got;
            RETURN NEXT;
        END LOOP;
    END $f$;
    CREATE OR REPLACE FUNCTION uvhttpd_records_put(p_id text, p_fields text) RETURNS boolean
    LANGUAGE plpgsql AS $f$
    DECLARE
        v_inserted boolean;
    BEGIN
        INSERT INTO uvhttpd_records AS r (id, fields) VALUES (p_id, p_fields)
            ON CONFLICT (id) DO UPDATE SET fields = EXCLUDED.fields RETURNING (r.xmax = 0) INTO v_inserted;
        IF v_inserted THEN
            PERFORM uvhttpd_records_bump(p_id);
        END IF;
        RETURN v_inserted;
    END $f$;
END $setup$;
COMMIT;
SELECT max(version) FROM uvhttpd_schema;
)SQL";

// A connection after the first one only makes sure of its durability.
inline constexpr const char* kSession = "SET synchronous_commit TO on";

// $1: the batch as the file store's lines without the last newline, an
// empty id for "number it" (" name=x"). One row per line, in order: its id,
// or NULL when the id was taken.
inline constexpr const char* kAppend = "SELECT o_n, o_id FROM uvhttpd_records_append($1)";
// $1 id, $2 fields. One row: true when the record was created.
inline constexpr const char* kPut = "SELECT uvhttpd_records_put($1, $2)";
inline constexpr const char* kGet = "SELECT fields FROM uvhttpd_records WHERE id = $1";
inline constexpr const char* kDelete = "DELETE FROM uvhttpd_records WHERE id = $1";
// Keyset pages in creation order: $1 the last seq seen, $2 the page size.
inline constexpr const char* kList =
    "SELECT seq, id, fields FROM uvhttpd_records WHERE seq > $1::bigint ORDER BY seq LIMIT $2::integer";

}  // namespace uvh::pg_sql
