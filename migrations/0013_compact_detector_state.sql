-- Every evaluation row carries the detector's state after it (where a restarted watch resumes). As jsonb, with its nine
-- field names in every row, it was about 300 bytes, close to half of the row since the query text is kept once (0012).
-- It is now an array of doubles in a fixed order (src/RolloutGate/Watch/StoredState.cs), about 100 bytes. Rows written
-- before keep their jsonb (no rewrite of a large table on upgrade); a row has one or the other.
ALTER TABLE evaluations ALTER COLUMN state DROP NOT NULL;
ALTER TABLE evaluations ADD COLUMN detector double precision[];
ALTER TABLE evaluations ADD CONSTRAINT evaluations_state_json_or_array CHECK ((state IS NULL) <> (detector IS NULL)) NOT VALID;

-- The view of 0012 without the state: in either form it is the detector's internal bookkeeping, not evidence.
DROP VIEW evaluation_evidence;
CREATE VIEW evaluation_evidence AS
SELECT e.deployment_id, e.metric, e.at, e.value, e.baseline, e.threshold, e.statistic, e.verdict, e.explanation,
       coalesce(e.query, q.query) AS query, e.evaluated_at
FROM evaluations e
LEFT JOIN evaluation_queries q ON q.id = e.query_id;
