-- Every evaluation keeps the query that produced its value (its evidence), but a watch asks the same query at every
-- interval: with the default runbook that is 4,320 copies a deployment, about 300 bytes each, close to a third of the
-- largest table. The text is now kept once, in evaluation_queries, and an evaluation points at it (query_id); a query
-- whose text changes (a custom query in a new runbook version, a preset changed by an upgrade mid-watch) is simply
-- another row there. Rows written before keep their text in evaluations.query: rewriting a large table on upgrade
-- would double it while it ran. evaluation_evidence shows both kinds alike; use it to read evaluations with SQL.
CREATE TABLE evaluation_queries (
    id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    query text   NOT NULL
);

-- By digest: a custom query may be longer than a btree entry can hold.
CREATE UNIQUE INDEX evaluation_queries_text ON evaluation_queries (md5(query));

-- Metadata only, no rewrite, no scan: the old rows satisfy the check as they are (text, no pointer).
ALTER TABLE evaluations ALTER COLUMN query DROP NOT NULL;
ALTER TABLE evaluations ADD COLUMN query_id bigint REFERENCES evaluation_queries (id);
ALTER TABLE evaluations ADD CONSTRAINT evaluations_query_text_or_pointer CHECK ((query IS NULL) <> (query_id IS NULL)) NOT VALID;

CREATE VIEW evaluation_evidence AS
SELECT e.deployment_id, e.metric, e.at, e.value, e.baseline, e.threshold, e.statistic, e.verdict, e.explanation,
       coalesce(e.query, q.query) AS query, e.state, e.evaluated_at
FROM evaluations e
LEFT JOIN evaluation_queries q ON q.id = e.query_id;
