-- Baseline samples as one compact bytea per deployment and metric instead of JSON with an object per sample. A 24-hour
-- baseline at 1-minute steps was about 150 KB of JSON text per metric, which every restart of the service read back,
-- rendered as text and parsed for every running watch; a bytea is sent as it is stored. The layout (big-endian, as
-- PostgreSQL's int8send and float8send write) is described in src/RolloutGate/Watch/StoredSamples.cs:
--   version byte 1, int4 n, n flag bytes (1 value, 2 requests, 4 errors present), then n int8 times (milliseconds
--   since the Unix epoch), n float8 values, n int8 request counts and n int8 error counts, 0 where absent.
-- The samples stored so far are converted in place, in their order.
ALTER TABLE watch_baselines ADD COLUMN compact bytea;

-- lz4 where the server has it (PostgreSQL 14 or later built with lz4, as the Debian and Docker builds are): it compresses
-- a baseline about as well as the default pglz, eight times as fast, and decompresses faster; elsewhere pglz stays.
DO $$
BEGIN
    EXECUTE 'ALTER TABLE watch_baselines ALTER COLUMN compact SET COMPRESSION lz4';
EXCEPTION WHEN feature_not_supported OR syntax_error THEN
    RAISE NOTICE 'watch_baselines.samples: lz4 compression is not available on this server; pglz is used';
END
$$;

UPDATE watch_baselines b
SET compact = x.compact
FROM (
    SELECT s.deployment_id, s.metric,
           '\x01'::bytea || int4send(count(*)::int)
           || string_agg(set_byte('\x00'::bytea, 0,
                  (CASE WHEN e ->> 'value' IS NULL THEN 0 ELSE 1 END)
                  | (CASE WHEN e ->> 'requests' IS NULL THEN 0 ELSE 2 END)
                  | (CASE WHEN e ->> 'errors' IS NULL THEN 0 ELSE 4 END)), ''::bytea ORDER BY n)
           || string_agg(int8send(floor(extract(epoch FROM (e ->> 'at')::timestamptz) * 1000)::bigint), ''::bytea ORDER BY n)
           || string_agg(float8send(coalesce((e ->> 'value')::double precision, 0)), ''::bytea ORDER BY n)
           || string_agg(int8send(coalesce((e ->> 'requests')::bigint, 0)), ''::bytea ORDER BY n)
           || string_agg(int8send(coalesce((e ->> 'errors')::bigint, 0)), ''::bytea ORDER BY n) AS compact
    FROM watch_baselines s, jsonb_array_elements(s.samples) WITH ORDINALITY AS j (e, n)
    GROUP BY s.deployment_id, s.metric
) x
WHERE b.deployment_id = x.deployment_id AND b.metric = x.metric;

-- A baseline with no samples at all (the source had nothing before the deploy): version 1, n = 0.
UPDATE watch_baselines SET compact = '\x0100000000'::bytea WHERE compact IS NULL;

ALTER TABLE watch_baselines DROP COLUMN samples;
ALTER TABLE watch_baselines RENAME COLUMN compact TO samples;
ALTER TABLE watch_baselines ALTER COLUMN samples SET NOT NULL;
