-- The local decision inbox also lists a rollback whose action failed. Such a deployment stays rolling-back until a
-- person retries the action (a new rollback decision) or stops the automation; without Slack, the inbox is where they
-- do it. A runbook without an action ('none configured') leaves the rollback to the pipeline: nothing to retry there.
CREATE OR REPLACE VIEW decision_inbox AS
SELECT d.id AS deployment_id, d.service, d.environment, d.version, d.previous_version, d.initiator, d.updated_at AS regressed_at,
       (SELECT a.data FROM audit_events a
         WHERE a.deployment_id = d.id AND a.type = 'evaluation.verdict-changed'
         ORDER BY a.id DESC LIMIT 1) AS evidence,
       r.action AS failed_action,
       r.detail AS failure
FROM deployments d
LEFT JOIN rollback_actions r ON r.deployment_id = d.id AND d.state = 'rolling-back'
WHERE d.state = 'regressed'
   OR (d.state = 'rolling-back' AND r.finished_at IS NOT NULL AND NOT r.succeeded AND r.action <> 'none configured');
