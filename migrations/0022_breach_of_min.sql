-- A watch metric may have an absolute floor (min): several intervals in a row below it are the verdict breach-of-min, as
-- above its max are breach-of-max. The evaluations' verdicts admit it (NOT VALID: the rows already stored hold the old
-- verdicts only, so there is nothing to check and the table is not scanned under a lock), and the local decision inbox
-- shows it as a deployment's evidence like the other regression verdicts (the view of 0017 with the new verdict).
ALTER TABLE evaluations DROP CONSTRAINT evaluations_verdict_check;
ALTER TABLE evaluations ADD CONSTRAINT evaluations_verdict_check
    CHECK (verdict IN ('healthy', 'regressed', 'breach-of-max', 'breach-of-min', 'insufficient-data', 'blind')) NOT VALID;

CREATE OR REPLACE VIEW decision_inbox AS
SELECT d.id AS deployment_id, d.service, d.environment, d.version, d.previous_version, d.initiator, d.updated_at AS regressed_at,
       COALESCE(
           (SELECT json_build_object('metrics', json_agg(a.data::json ORDER BY a.id))::text
              FROM audit_events a
             WHERE a.deployment_id = d.id AND a.type = 'evaluation.verdict-changed'
               AND a.data::json->>'verdict' IN ('regressed', 'breach-of-max', 'breach-of-min')
               AND a.data::json->>'at' = (SELECT b.data::json->>'at' FROM audit_events b
                                          WHERE b.deployment_id = d.id AND b.type = 'evaluation.verdict-changed'
                                            AND b.data::json->>'verdict' IN ('regressed', 'breach-of-max', 'breach-of-min')
                                          ORDER BY b.id DESC LIMIT 1)
            HAVING count(*) > 0),
           (SELECT a.data FROM audit_events a
             WHERE a.deployment_id = d.id AND a.type = 'evaluation.verdict-changed'
             ORDER BY a.id DESC LIMIT 1)) AS evidence,
       r.action AS failed_action,
       r.detail AS failure
FROM deployments d
LEFT JOIN rollback_actions r ON r.deployment_id = d.id AND d.state = 'rolling-back'
WHERE d.state = 'regressed'
   OR (d.state = 'rolling-back' AND r.finished_at IS NOT NULL AND NOT r.succeeded AND r.action <> 'none configured');
