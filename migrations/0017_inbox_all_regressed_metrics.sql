-- The local decision inbox shows, as a deployment's evidence, every metric that regressed at the evaluation that moved
-- it to regressed: the watch audits one evaluation.verdict-changed event per metric, and the view showed only the last
-- one, so of two metrics regressing at once the inbox named one. Events of another shape (or none regressed) fall back
-- to the last verdict change, as before.
CREATE OR REPLACE VIEW decision_inbox AS
SELECT d.id AS deployment_id, d.service, d.environment, d.version, d.previous_version, d.initiator, d.updated_at AS regressed_at,
       COALESCE(
           (SELECT json_build_object('metrics', json_agg(a.data::json ORDER BY a.id))::text
              FROM audit_events a
             WHERE a.deployment_id = d.id AND a.type = 'evaluation.verdict-changed'
               AND a.data::json->>'verdict' IN ('regressed', 'breach-of-max')
               AND a.data::json->>'at' = (SELECT b.data::json->>'at' FROM audit_events b
                                          WHERE b.deployment_id = d.id AND b.type = 'evaluation.verdict-changed'
                                            AND b.data::json->>'verdict' IN ('regressed', 'breach-of-max')
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
