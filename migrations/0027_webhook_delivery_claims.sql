-- A predeploy's runbook checks run before its transaction (up to the runbook's preDeploy.timeout), and a retry of the
-- delivery arriving meanwhile (a CD system retrying after its own time-out), on this replica or another, ran them again:
-- an http check's URL called twice, each Prometheus query asked twice. The request that runs them claims the delivery id
-- here first; a retry finds the claim and waits for the answer instead. The claim is a lease on the database's clock:
-- released when the request is done, taken over once claimed_until has passed (a replica killed while its checks ran).
CREATE TABLE webhook_delivery_claims (
    delivery_id     text        PRIMARY KEY,
    claimed_by      text        NOT NULL,
    claimed_until   timestamptz NOT NULL
);
