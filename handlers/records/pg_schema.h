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
    -- --max-store-size: the store's size is the file store's, the sum of
    -- its lines ("id fields\n", octet_length(id) + octet_length(fields) + 2),
    -- kept by statement triggers (and by the append function itself, once
    -- per batch) in 64 slots (a connection adds to the slot
    -- of its backend pid, so concurrent commits rarely wait on one row;
    -- the size is the slots' sum). Every change of the table counts, a
    -- DBA's too; TRUNCATE zeroes it. Made once, under a lock that waits for
    -- writers in flight, from the rows already there (a store created by an
    -- uvhttpd without it). Additive: an older uvhttpd on the same schema
    -- keeps working (its writes are counted; it does not enforce the cap).
    CREATE TABLE IF NOT EXISTS uvhttpd_records_size (
        slot integer PRIMARY KEY CHECK (slot BETWEEN 0 AND 63),
        bytes bigint NOT NULL
    );
    CREATE OR REPLACE FUNCTION uvhttpd_records_count() RETURNS trigger LANGUAGE plpgsql AS $f$
    DECLARE
        v_delta bigint := 0;
    BEGIN
        IF TG_OP = 'TRUNCATE' THEN
            UPDATE uvhttpd_records_size SET bytes = 0;
            RETURN NULL;
        END IF;
        -- The append function counts its own rows, once per batch.
        IF current_setting('uvhttpd.counting', true) = 'append' THEN
            RETURN NULL;
        END IF;
        IF TG_OP <> 'DELETE' THEN
            SELECT v_delta + coalesce(sum(octet_length(id) + octet_length(fields) + 2), 0) INTO v_delta
                FROM uvhttpd_new_rows;
        END IF;
        IF TG_OP <> 'INSERT' THEN
            SELECT v_delta - coalesce(sum(octet_length(id) + octet_length(fields) + 2), 0) INTO v_delta
                FROM uvhttpd_old_rows;
        END IF;
        IF v_delta <> 0 THEN
            UPDATE uvhttpd_records_size SET bytes = bytes + v_delta WHERE slot = pg_backend_pid() % 64;
        END IF;
        RETURN NULL;
    END $f$;
    IF NOT EXISTS (SELECT 1 FROM uvhttpd_records_size) THEN
        LOCK TABLE uvhttpd_records IN SHARE ROW EXCLUSIVE MODE;
        INSERT INTO uvhttpd_records_size (slot, bytes) SELECT g, 0 FROM generate_series(0, 63) g;
        UPDATE uvhttpd_records_size SET bytes =
            (SELECT coalesce(sum(octet_length(id) + octet_length(fields) + 2), 0) FROM uvhttpd_records)
            WHERE slot = 0;
        CREATE TRIGGER uvhttpd_records_size_insert AFTER INSERT ON uvhttpd_records
            REFERENCING NEW TABLE AS uvhttpd_new_rows FOR EACH STATEMENT EXECUTE FUNCTION uvhttpd_records_count();
        CREATE TRIGGER uvhttpd_records_size_update AFTER UPDATE ON uvhttpd_records
            REFERENCING OLD TABLE AS uvhttpd_old_rows NEW TABLE AS uvhttpd_new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION uvhttpd_records_count();
        CREATE TRIGGER uvhttpd_records_size_delete AFTER DELETE ON uvhttpd_records
            REFERENCING OLD TABLE AS uvhttpd_old_rows FOR EACH STATEMENT EXECUTE FUNCTION uvhttpd_records_count();
        CREATE TRIGGER uvhttpd_records_size_truncate AFTER TRUNCATE ON uvhttpd_records
            FOR EACH STATEMENT EXECUTE FUNCTION uvhttpd_records_count();
    END IF;
    -- The next auto id's line length needs the id: the one nextval would
    -- give now (another instance may take it first; the id it then gets
    -- is at most a digit longer).
    CREATE OR REPLACE FUNCTION uvhttpd_records_next_auto() RETURNS bigint LANGUAGE sql AS $f$
        SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM uvhttpd_records_auto
    $f$;
    -- The append with the cap (p_cap bytes; 0: none): a line that would
    -- take the store past it is refused (o_full), nothing of it stored,
    -- no number taken.
    CREATE OR REPLACE FUNCTION uvhttpd_records_append(p_lines text, p_cap bigint)
    RETURNS TABLE (o_n integer, o_id text, o_full boolean) LANGUAGE plpgsql AS $f$
    DECLARE
        v_line text;
        v_id text;
        v_fields text;
        v_got text;
        v_total bigint := 0;
        v_bytes bigint;
        v_next bigint;  -- the next auto id, read once per batch
        v_added bigint := 0;
    BEGIN
        o_n := 0;
        -- Its inserts are counted here, in one update at the end, not by
        -- the trigger once per row (transaction-local; cleared again
        -- below, so later statements of the transaction are counted).
        PERFORM set_config('uvhttpd.counting', 'append', true);
        IF p_cap > 0 THEN
            SELECT coalesce(sum(bytes), 0) INTO v_total FROM uvhttpd_records_size;
        END IF;
        FOREACH v_line IN ARRAY string_to_array(p_lines, E'\n') LOOP
            o_n := o_n + 1;
            o_full := false;
            v_got := NULL;
            v_id := split_part(v_line, ' ', 1);
            v_fields := substr(v_line, length(v_id) + 2);
            IF p_cap > 0 THEN
                IF v_id = '' AND v_next IS NULL THEN
                    v_next := uvhttpd_records_next_auto();
                END IF;
                v_bytes := octet_length(v_fields) + 2 + CASE WHEN v_id <> '' THEN octet_length(v_id)
                           ELSE length(v_next::text) END;
                IF v_total + v_bytes > p_cap THEN
                    o_full := true;
                    o_id := NULL;
                    RETURN NEXT;
                    CONTINUE;
                END IF;
            END IF;
            IF v_id <> '' THEN
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
            IF v_got IS NOT NULL THEN
                v_added := v_added + octet_length(v_got) + octet_length(v_fields) + 2;
                v_total := v_total + octet_length(v_got) + octet_length(v_fields) + 2;
                IF v_next IS NOT NULL AND v_got ~ '^[0-9]+$' AND length(v_got) <= 18 THEN
                    v_next := greatest(v_next, v_got::bigint + 1);
                END IF;
            END IF;
            o_id := v_got;
            RETURN NEXT;
        END LOOP;
        PERFORM set_config('uvhttpd.counting', '', true);
        IF v_added <> 0 THEN
            UPDATE uvhttpd_records_size SET bytes = bytes + v_added WHERE slot = pg_backend_pid() % 64;
        END IF;
    END $f$;
    -- The append without a cap, as uvhttpd before --max-store-size on
    -- PostgreSQL called it (an older instance on the same database).
    CREATE OR REPLACE FUNCTION uvhttpd_records_append(p_lines text)
    RETURNS TABLE (o_n integer, o_id text) LANGUAGE sql AS $f$
        SELECT a.o_n, a.o_id FROM uvhttpd_records_append(p_lines, 0) a
    $f$;
    -- PUT with the cap: 'created', 'replaced', or 'full' when the record
    -- would grow the store past p_cap (a PUT that shrinks or keeps the
    -- size always passes, as in the file store).
    CREATE OR REPLACE FUNCTION uvhttpd_records_put(p_id text, p_fields text, p_cap bigint) RETURNS text
    LANGUAGE plpgsql AS $f$
    DECLARE
        v_old bigint;
        v_delta bigint;
        v_total bigint;
    BEGIN
        IF p_cap > 0 THEN
            SELECT octet_length(fields) INTO v_old FROM uvhttpd_records WHERE id = p_id;
            v_delta := octet_length(p_fields) - coalesce(v_old, -(octet_length(p_id) + 2));
            IF v_delta > 0 THEN
                SELECT coalesce(sum(bytes), 0) INTO v_total FROM uvhttpd_records_size;
                IF v_total + v_delta > p_cap THEN
                    RETURN 'full';
                END IF;
            END IF;
        END IF;
        RETURN CASE WHEN uvhttpd_records_put(p_id, p_fields) THEN 'created' ELSE 'replaced' END;
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
// empty id for "number it" (" name=x"); $2 --max-store-size (0: none). One
// row per line, in order: its id, or NULL when the id was taken or (o_full)
// the store is full.
inline constexpr const char* kAppend = "SELECT o_n, o_id, o_full FROM uvhttpd_records_append($1, $2::bigint)";
// $1 id, $2 fields, $3 --max-store-size. One row: created, replaced or full.
inline constexpr const char* kPut = "SELECT uvhttpd_records_put($1, $2, $3::bigint)";
inline constexpr const char* kGet = "SELECT fields FROM uvhttpd_records WHERE id = $1";
inline constexpr const char* kDelete = "DELETE FROM uvhttpd_records WHERE id = $1";
// Keyset pages in creation order: $1 the last seq seen, $2 the page size.
inline constexpr const char* kList =
    "SELECT seq, id, fields FROM uvhttpd_records WHERE seq > $1::bigint ORDER BY seq LIMIT $2::integer";

}  // namespace uvh::pg_sql
